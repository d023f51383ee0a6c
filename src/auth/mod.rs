//! Authentication: registration, login, refresh-token rotation with reuse detection, logout,
//! and the bearer check every protected operation runs.

pub mod api;
pub mod bearer;
pub mod password;
pub mod service;
pub mod store;
pub mod tokens;

use uuid::Uuid;

use crate::users::model::Role;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user the access token was issued to.
    pub user_id: Uuid,
    /// The login session (refresh-token family) the access token belongs to.
    pub session_id: Uuid,
    /// The user's role now (read from the database, not from the token).
    pub role: Role,
}
