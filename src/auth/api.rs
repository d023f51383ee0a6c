//! `/api/v1/auth`: register, login, refresh, logout.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;

use crate::auth::bearer::BearerAuth;
use crate::auth::password;
use crate::auth::service::{self, TokenPair};
use crate::error::FieldError;
use crate::http::body::JsonBody;
use crate::http::problem::ApiError;
use crate::http::responses::{Created, Issued, NoContent, ResourcePath};
use crate::http::tags::Tag;
use crate::state::AppState;
use crate::users::model::{DISPLAY_NAME_MAX, User, parse_email};
use crate::validate::{FieldChecks, Validate};

crate::error_set! {
    /// Errors of register.
    RegisterErrors = [400, 409, 413, 415];
    /// Errors of login and refresh.
    CredentialErrors = [400, 401, 413, 415];
    /// Errors of logout.
    LogoutErrors = [401];
}

/// A new account.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address; used to log in. Case does not matter.
    #[oai(validator(
        max_length = 254,
        pattern = r"^\s*[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\s*$"
    ))]
    pub email: String,
    /// At least 12 and at most 128 characters.
    #[oai(validator(min_length = 12, max_length = 128))]
    pub password: String,
    /// Name shown to other project members (1 to 100 characters).
    #[oai(validator(min_length = 1, max_length = 100))]
    pub display_name: String,
}

impl Validate for RegisterRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        if let Err(err) = parse_email("email", &self.email) {
            checks.fail(&err.field, err.message);
        }
        password::check_new(&mut checks, "password", &self.password);
        checks.line("display_name", &self.display_name, 1, DISPLAY_NAME_MAX);
        checks.finish()
    }
}

/// Credentials.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    #[oai(validator(min_length = 1, max_length = 254))]
    pub email: String,
    /// Password.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub password: String,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        checks.line("email", &self.email, 1, 254);
        checks.text("password", &self.password, 1, password::MAX_LEN);
        checks.finish()
    }
}

/// A refresh token to rotate.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    #[oai(validator(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-]+$"))]
    pub refresh_token: String,
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Vec<FieldError> {
        FieldChecks::default()
            .line("refresh_token", &self.refresh_token, 1, 128)
            .finish()
    }
}

/// Registration and tokens.
pub struct AuthApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1/auth", tag = "Tag::Auth")]
impl AuthApi {
    /// Register an account
    ///
    /// Creates a user with the `user` role. The password is stored as an Argon2id hash.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        body: JsonBody<RegisterRequest>,
    ) -> Result<Created<User>, ApiError<RegisterErrors>> {
        let RegisterRequest {
            email,
            password,
            display_name,
        } = body.0;
        let email = parse_email("email", &email)
            .map_err(|e| crate::error::AppError::Validation(vec![e]))?;
        let user = service::register(
            &self.state.auth,
            email,
            display_name.trim().to_owned(),
            password,
        )
        .await?;
        Ok(Created::Created(
            Json(user),
            ResourcePath("/api/v1/users/me".to_owned()),
        ))
    }

    /// Log in
    ///
    /// Exchanges email and password for an access token (about 15 minutes) and a refresh token.
    /// A wrong email and a wrong password give the same answer.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        body: JsonBody<LoginRequest>,
    ) -> Result<Issued<TokenPair>, ApiError<CredentialErrors>> {
        let email = body.0.email.trim().to_lowercase();
        Ok(Issued(
            service::login(&self.state.auth, &email, body.0.password).await?,
        ))
    }

    /// Refresh tokens
    ///
    /// Rotates the refresh token: returns a new pair, and the presented refresh token can never
    /// be used again. Presenting an already-used refresh token revokes its whole session.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        body: JsonBody<RefreshRequest>,
    ) -> Result<Issued<TokenPair>, ApiError<CredentialErrors>> {
        Ok(Issued(
            service::refresh(&self.state.auth, &body.0.refresh_token).await?,
        ))
    }

    /// Log out
    ///
    /// Ends the session of the presented access token: it and the session's refresh token stop
    /// working at once.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: BearerAuth) -> Result<NoContent, ApiError<LogoutErrors>> {
        service::logout(&self.state.auth, &auth.0).await?;
        Ok(NoContent::NoContent)
    }
}
