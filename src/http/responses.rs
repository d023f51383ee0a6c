//! Success responses shared by several operations.

use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use poem_openapi::types::{ToJSON, Type};

/// `201 Created` with the new resource and its `Location`.
#[derive(ApiResponse)]
pub enum Created<T: Type + ToJSON> {
    /// Created. `Location` is the new resource's URL.
    #[oai(status = 201)]
    Created(Json<T>, #[oai(header = "Location")] String),
}

/// `204 No Content`.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done; there is no body.
    #[oai(status = 204)]
    NoContent,
}
