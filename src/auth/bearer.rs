//! The bearer security scheme: `Authorization: Bearer <access token>`, checked on every
//! protected operation (signature and claims, then the user's and session's current state).

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::auth::Principal;
use crate::auth::service::{authenticate, authenticate_claims};
use crate::auth::tokens::VerifiedToken;
use crate::http::problem::ApiError;
use crate::state::AppState;

/// An access token from `POST /api/v1/auth/login` or `/auth/refresh`, sent as
/// `Authorization: Bearer <token>`. Tokens in the query string are not accepted. The tokens
/// follow RFC8725 (JWT Best Current Practices): HS256 only, `alg: none` and every other
/// algorithm refused, `exp` always checked, and the session behind the token looked up too.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_bearer"
)]
pub struct BearerAuth(pub Principal);

/// An administrator's access token: the same token as `bearerAuth` (RFC8725, HS256 only), from
/// an account whose role is `admin`. Marks the operations only administrators may call; any
/// other account gets 403.
#[derive(SecurityScheme)]
#[oai(
    rename = "adminBearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_bearer"
)]
pub struct AdminBearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let Some(state) = req.data::<AppState>() else {
        return Err(poem::Error::from_string(
            "application state is not attached",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        ));
    };
    let verified = req
        .extensions()
        .get::<VerifiedToken>()
        .filter(|v| v.token == bearer.token);
    let principal = match verified {
        Some(verified) => authenticate_claims(&state.auth, &verified.claims).await,
        None => authenticate(&state.auth, &bearer.token).await,
    }
    .map_err(|err| poem::Error::from(ApiError::<()>::from(err)))?;
    crate::telemetry::context::set_user(principal.user_id);
    Ok(principal)
}
