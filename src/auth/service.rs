//! Authentication rules: registration, login, refresh rotation with reuse detection, logout and
//! the bearer check.

use std::sync::Arc;

use chrono::Duration;
use poem_openapi::Object;
use serde_json::json;
use uuid::Uuid;

use crate::audit::model::Change;
use crate::auth::store::SessionState;
use crate::auth::tokens::TokenKeys;
use crate::auth::{Principal, password, tokens};
use crate::cache::keys;
use crate::domain::DomainContext;
use crate::error::{AppError, AppResult};
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::users::model::{Role, User};
use crate::users::service::{cached_user, email_taken};
use crate::users::store::UserRecord;
use crate::verification::service::{self as verification, Verifier};

/// What the authentication rules work with.
#[derive(Clone)]
pub struct AuthContext {
    /// Database, cache and metrics.
    pub domain: DomainContext,
    /// Access-token signing and verification.
    pub tokens: Arc<TokenKeys>,
    /// The per-account limits of login, registration and refresh.
    pub rate_limiter: Arc<RateLimiter>,
    /// How long a refresh token, and the login session it belongs to, lives.
    pub refresh_token_ttl: std::time::Duration,
    /// Issues and mails email-verification links.
    pub verifier: Verifier,
}

impl AuthContext {
    /// The refresh-token lifetime as a `chrono` duration.
    fn refresh_ttl(&self) -> Duration {
        Duration::from_std(self.refresh_token_ttl).unwrap_or(Duration::days(30))
    }
}

/// Tokens issued by login and refresh.
#[derive(Debug, Object)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`; valid for `expires_in` seconds.
    #[oai(validator(
        max_length = 4096,
        pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"
    ))]
    pub access_token: String,
    /// Always `Bearer`.
    #[oai(validator(max_length = 6, pattern = "^Bearer$"))]
    pub token_type: String,
    /// Seconds until the access token expires (`TASKLIGHT_ACCESS_TOKEN_TTL_SECS`, 30 s to 24 h).
    #[oai(validator(minimum(value = "1"), maximum(value = "86400")))]
    pub expires_in: u64,
    /// Opaque token for `POST /auth/refresh`; single use (each refresh returns a new one).
    #[oai(validator(max_length = 128, pattern = "^[A-Za-z0-9_-]+$"))]
    pub refresh_token: String,
    /// Seconds until the refresh token expires (`TASKLIGHT_REFRESH_TOKEN_TTL_SECS`, 60 s to
    /// 365 days).
    #[oai(validator(minimum(value = "1"), maximum(value = "31536000")))]
    pub refresh_expires_in: u64,
}

const LOGIN_FAILED: &str = "the email or password is incorrect";
const REFRESH_FAILED: &str = "the refresh token is invalid, expired or revoked; log in again";

/// Creates a user with the `user` role (the input is already validated), its address not yet
/// verified; the verification link is mailed once the account is committed (a mail failure is
/// logged and loses nothing: the user can ask for another link).
pub async fn register(
    auth: &AuthContext,
    email: String,
    display_name: String,
    password: String,
) -> AppResult<User> {
    auth.rate_limiter.check_account(&email).await?;
    let password_hash = password::hash(password).await?;
    let now = crate::db::now();
    let user = UserRecord {
        id: Uuid::now_v7(),
        email,
        display_name,
        password_hash,
        role: Role::User.as_str().to_owned(),
        disabled: false,
        created_at: now,
        updated_at: now,
        email_verified_at: None,
    };
    let mut work = auth.domain.begin(Some(user.id)).await?;
    work.insert_user(&user).await.map_err(email_taken)?;
    let mail = verification::issue(&auth.verifier, &mut work, user.id, &user.email).await?;
    work.record(Change {
        action: "user.registered",
        entity_type: "user",
        entity_id: user.id,
        project_id: None,
        summary: json!({ "email": user.email, "display_name": user.display_name }),
        resource: json!({ "id": user.id }),
    })
    .await?;
    work.commit().await?;
    if let Some(mail) = mail {
        mail.send(&auth.verifier);
    }
    Ok(user.into())
}

/// Checks the password and opens a session. An unknown email and a wrong password fail alike,
/// and take as long.
pub async fn login(auth: &AuthContext, email: &str, password: String) -> AppResult<TokenPair> {
    auth.rate_limiter.check_account(email).await?;
    let user = auth.domain.read().await?.user_by_email(email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let failed = |reason: &'static str| {
        auth.domain.metrics.auth.login_failure.increment(1);
        AppError::Unauthorized(reason)
    };
    if !password::verify(password, stored).await? {
        return Err(failed(LOGIN_FAILED));
    }
    let user = user.ok_or_else(|| failed(LOGIN_FAILED))?;
    if user.disabled {
        return Err(failed("this account is disabled"));
    }
    let session_id = Uuid::now_v7();
    let now = crate::db::now();
    let mut work = auth.domain.begin(Some(user.id)).await?;
    work.insert_session(session_id, user.id, now, now + auth.refresh_ttl())
        .await?;
    let pair = issue_pair(auth, &mut *work, user.id, session_id).await?;
    work.commit().await?;
    auth.domain.metrics.auth.login_success.increment(1);
    Ok(pair)
}

/// Rotates a refresh token. Presenting a token that was already rotated means it leaked:
/// the whole session is revoked (RFC 9700 section 4.14.2).
pub async fn refresh(auth: &AuthContext, token: &str) -> AppResult<TokenPair> {
    let hash = tokens::hash_refresh_token(token);
    let now = crate::db::now();
    let mut work = auth.domain.begin(None).await?;
    let record = work
        .refresh_token(&hash)
        .await?
        .ok_or(AppError::Unauthorized(REFRESH_FAILED))?;
    auth.rate_limiter
        .check_account(&record.user_id.to_string())
        .await?;
    if record.used_at.is_some() || !work.mark_refresh_token_used(&hash, now).await? {
        work.revoke_session(record.session_id, "refresh token reuse", now)
            .await?;
        work.invalidate([keys::session(record.session_id)]);
        work.commit().await?;
        auth.domain.metrics.auth.reuse_detected.increment(1);
        tracing::warn!(
            session_id = %record.session_id,
            user_id = %record.user_id,
            "refresh token reuse detected; session revoked"
        );
        return Err(AppError::Unauthorized(REFRESH_FAILED));
    }
    if record.expires_at <= now {
        return Err(AppError::Unauthorized(REFRESH_FAILED));
    }
    let alive = work
        .principal_state(record.user_id, record.session_id)
        .await?
        .is_some_and(|s| !s.disabled && s.revoked_at.is_none() && s.expires_at > now);
    if !alive {
        return Err(AppError::Unauthorized(REFRESH_FAILED));
    }
    let pair = issue_pair(auth, &mut *work, record.user_id, record.session_id).await?;
    work.commit().await?;
    auth.domain.metrics.auth.refresh.increment(1);
    Ok(pair)
}

async fn issue_pair(
    auth: &AuthContext,
    store: &mut dyn Store,
    user_id: Uuid,
    session_id: Uuid,
) -> AppResult<TokenPair> {
    let now = crate::db::now();
    let (refresh_token, hash) = tokens::new_refresh_token();
    store
        .insert_refresh_token(&hash, session_id, now, now + auth.refresh_ttl())
        .await?;
    Ok(TokenPair {
        access_token: auth.tokens.issue(user_id, session_id)?,
        token_type: "Bearer".to_owned(),
        expires_in: auth.tokens.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: auth.refresh_token_ttl.as_secs(),
    })
}

/// Ends the caller's session: its access and refresh tokens stop working.
pub async fn logout(auth: &AuthContext, principal: &Principal) -> AppResult<()> {
    auth.domain
        .read()
        .await?
        .revoke_session(principal.session_id, "logout", crate::db::now())
        .await?;
    auth.domain
        .cache
        .invalidate(&[keys::session(principal.session_id)])
        .await;
    Ok(())
}

async fn session_state(domain: &DomainContext, id: Uuid) -> AppResult<Option<SessionState>> {
    domain
        .cache
        .get_or_load("session", keys::session(id), || async {
            Ok(domain.read().await?.session(id).await?)
        })
        .await
}

/// Verifies an access token and checks that its user is enabled and its session alive. Both
/// come from the cache; every change to them invalidates it on every instance.
pub async fn authenticate(auth: &AuthContext, token: &str) -> AppResult<Principal> {
    let claims = auth.tokens.verify(token)?;
    authenticate_claims(auth, &claims).await
}

/// The rest of [`authenticate`], for claims already verified (by the rate limiter, which keys
/// authenticated requests by user).
pub async fn authenticate_claims(
    auth: &AuthContext,
    claims: &tokens::Claims,
) -> AppResult<Principal> {
    session_principal(&auth.domain, claims.sub, claims.sid).await
}

/// The principal of user `user_id` in session `session_id`, if the user is enabled and the
/// session alive (from the cache, which every change to them invalidates on every instance):
/// what a long-lived answer (an event stream) checks again while it lasts.
pub async fn session_principal(
    domain: &DomainContext,
    user_id: Uuid,
    session_id: Uuid,
) -> AppResult<Principal> {
    const INVALID: &str = "the access token is invalid or expired";
    let session = session_state(domain, session_id)
        .await?
        .filter(|s| s.user_id == user_id)
        .ok_or(AppError::Unauthorized(INVALID))?;
    let user = cached_user(domain, user_id)
        .await?
        .ok_or(AppError::Unauthorized(INVALID))?;
    if user.disabled {
        return Err(AppError::Unauthorized("this account is disabled"));
    }
    if session.revoked_at.is_some() || session.expires_at <= crate::db::now() {
        return Err(AppError::Unauthorized(
            "the session has ended (logout, password change or revocation); log in again",
        ));
    }
    Ok(Principal {
        user_id,
        session_id,
        role: user.role,
    })
}
