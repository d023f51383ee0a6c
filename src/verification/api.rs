//! `/api/v1/auth/verify-email` and `/api/v1/auth/resend-verification`.

use poem_openapi::{Object, OpenApi};
use serde::Deserialize;

use crate::auth::bearer::BearerAuth;
use crate::error::FieldError;
use crate::http::body::JsonBody;
use crate::http::problem::ApiError;
use crate::http::responses::NoContent;
use crate::http::tags::Tag;
use crate::state::AppState;
use crate::validate::{FieldChecks, Validate};
use crate::verification::service;

crate::error_set! {
    /// Errors of taking a verification link's token.
    VerifyEmailErrors = [400, 413, 415];
    /// Errors of asking for a new link.
    ResendVerificationErrors = [401];
}

/// The token from a verification link (`.../verify-email?token=...`).
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The `token` parameter of the link in the mail.
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_-]+$"))]
    pub token: String,
}

impl Validate for VerifyEmailRequest {
    fn validate(&self) -> Vec<FieldError> {
        FieldChecks::default()
            .line("token", &self.token, 1, 128)
            .finish()
    }
}

/// Email verification.
pub struct VerificationApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1/auth", tag = "Tag::Auth")]
impl VerificationApi {
    /// Verify my email address
    ///
    /// Takes the token of the link mailed on registration or on an email change and marks
    /// that address verified. A token works once, until it expires (24 hours by default), and
    /// only while the account still has the address it was sent to; otherwise 400 naming
    /// `token`. Needs no access token: the link may be opened on another device.
    #[oai(path = "/verify-email", method = "post", operation_id = "verifyEmail")]
    async fn verify_email(
        &self,
        body: JsonBody<VerifyEmailRequest>,
    ) -> Result<NoContent, ApiError<VerifyEmailErrors>> {
        service::verify(&self.state.domain, &body.0.token).await?;
        Ok(NoContent::NoContent)
    }

    /// Send a new verification link
    ///
    /// Mails a new link to the caller's address (older links stop working). The answer is 204
    /// whether a mail was sent, the address was verified already, or the service has no SMTP
    /// server (then an administrator marks addresses verified with `tasklight verify-email`).
    /// Limited per account like logins.
    #[oai(
        path = "/resend-verification",
        method = "post",
        operation_id = "resendVerification"
    )]
    async fn resend_verification(
        &self,
        auth: BearerAuth,
    ) -> Result<NoContent, ApiError<ResendVerificationErrors>> {
        service::resend(
            &self.state.domain,
            &self.state.auth.verifier,
            &self.state.rate_limiter,
            &auth.0,
        )
        .await?;
        Ok(NoContent::NoContent)
    }
}
