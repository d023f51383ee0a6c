//! `JsonBody<T>`: a JSON request body whose errors name the field.
//!
//! The schema comes from `T`'s OpenAPI derive; parsing goes through serde with
//! `serde_path_to_error`, so a wrong type, a missing field or an unknown field is reported with
//! its path (`tags[2]`), and then [`Validate`] checks the limits the schema documents.

use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::http::problem::ApiError;
use crate::validate::Validate;

/// A JSON request body of type `T` (and the bytes it was parsed from, for idempotency
/// fingerprints).
pub struct JsonBody<T>(pub T, Vec<u8>);

impl<T> JsonBody<T> {
    /// The body as the client sent it.
    pub fn raw(&self) -> &[u8] {
        &self.1
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(mime)
            if mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json")))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + Validate> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = body.take()?.into_vec().await?;
        let value = parse(&bytes).map_err(ApiError::<()>::from)?;
        Ok(Self(value, bytes))
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: Type + DeserializeOwned + Validate);

/// Parses and validates a body; the error lists the fields at fault.
pub fn parse<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::field(
            "body",
            "the request body is empty; send a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        AppError::field(field, err.into_inner().to_string())
    })?;
    deserializer.end().map_err(|err| {
        AppError::field(
            "body",
            format!("unexpected data after the JSON value: {err}"),
        )
    })?;
    let errors = value.validate();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(AppError::Validation(errors))
    }
}

/// For optional request fields that may be left out but not sent as `null`:
/// `#[serde(default, deserialize_with = "crate::http::body::present")]`. The schema says such a
/// field is a string (or number, enum, array), so `null` is refused with a 400 naming it.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
