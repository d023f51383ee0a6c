//! Authentication rules: registration, login, refresh rotation with reuse detection, logout and
//! the bearer check.

use chrono::Duration;
use poem_openapi::Object;
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::store::SessionState;
use crate::auth::{Principal, password, tokens};
use crate::cache::keys;
use crate::error::{AppError, AppResult};
use crate::ratelimit::middleware::check_account;
use crate::users::model::{Role, User};
use crate::users::store::UserRecord;

/// Tokens issued by login and refresh.
#[derive(Debug, Object)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`; valid for `expires_in` seconds.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque token for `POST /auth/refresh`; single use (each refresh returns a new one).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

const LOGIN_FAILED: &str = "the email or password is incorrect";
const REFRESH_FAILED: &str = "the refresh token is invalid, expired or revoked; log in again";

/// Creates a user with the `user` role (the input is already validated).
pub async fn register(
    state: &AppState,
    email: String,
    display_name: String,
    password: String,
) -> AppResult<User> {
    check_account(state, &email).await?;
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
    };
    let mut tx = state.db.begin().await?;
    tx.insert_user(&user).await.map_err(email_taken)?;
    let change = Change {
        action: "user.registered",
        entity_type: "user",
        entity_id: user.id,
        project_id: None,
        summary: json!({ "email": user.email, "display_name": user.display_name }),
    };
    audit::record(&mut *tx, &state.config.instance_id, Some(user.id), change).await?;
    tx.commit().await?;
    Ok(user.into())
}

/// Maps a unique violation on insert or update of a user to a clear 409.
pub fn email_taken(err: crate::db::StoreError) -> AppError {
    match err {
        crate::db::StoreError::Conflict(_) => {
            AppError::Conflict("an account with this email already exists".into())
        }
        other => other.into(),
    }
}

/// Checks the password and opens a session. An unknown email and a wrong password fail alike,
/// and take as long.
pub async fn login(state: &AppState, email: &str, password: String) -> AppResult<TokenPair> {
    check_account(state, email).await?;
    let user = state.db.conn().await?.user_by_email(email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let failed = |reason: &'static str| {
        state.metrics.auth.login_failure.increment(1);
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
    let session_ttl =
        Duration::from_std(state.config.refresh_token_ttl).unwrap_or(Duration::days(30));
    let mut tx = state.db.begin().await?;
    tx.insert_session(session_id, user.id, now, now + session_ttl)
        .await?;
    let pair = issue_pair(state, &mut *tx, user.id, session_id).await?;
    tx.commit().await?;
    state.metrics.auth.login_success.increment(1);
    Ok(pair)
}

/// Rotates a refresh token. Presenting a token that was already rotated means it leaked:
/// the whole session is revoked (RFC 9700 section 4.14.2).
pub async fn refresh(state: &AppState, token: &str) -> AppResult<TokenPair> {
    let hash = tokens::hash_refresh_token(token);
    let now = crate::db::now();
    let mut tx = state.db.begin().await?;
    let record = tx
        .refresh_token(&hash)
        .await?
        .ok_or(AppError::Unauthorized(REFRESH_FAILED))?;
    check_account(state, &record.user_id.to_string()).await?;
    if record.used_at.is_some() || !tx.mark_refresh_token_used(&hash, now).await? {
        tx.revoke_session(record.session_id, "refresh token reuse", now)
            .await?;
        tx.commit().await?;
        state
            .cache
            .invalidate(&[keys::session(record.session_id)])
            .await;
        state.metrics.auth.reuse_detected.increment(1);
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
    let alive = tx
        .principal_state(record.user_id, record.session_id)
        .await?
        .is_some_and(|s| !s.disabled && s.revoked_at.is_none() && s.expires_at > now);
    if !alive {
        return Err(AppError::Unauthorized(REFRESH_FAILED));
    }
    let pair = issue_pair(state, &mut *tx, record.user_id, record.session_id).await?;
    tx.commit().await?;
    state.metrics.auth.refresh.increment(1);
    Ok(pair)
}

async fn issue_pair(
    state: &AppState,
    store: &mut dyn crate::db::Store,
    user_id: Uuid,
    session_id: Uuid,
) -> AppResult<TokenPair> {
    let now = crate::db::now();
    let ttl = state.config.refresh_token_ttl;
    let (refresh_token, hash) = tokens::new_refresh_token();
    let expires_at = now + Duration::from_std(ttl).unwrap_or(Duration::days(30));
    store
        .insert_refresh_token(&hash, session_id, now, expires_at)
        .await?;
    Ok(TokenPair {
        access_token: state.tokens.issue(user_id, session_id)?,
        token_type: "Bearer".to_owned(),
        expires_in: state.tokens.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: ttl.as_secs(),
    })
}

/// Ends the caller's session: its access and refresh tokens stop working.
pub async fn logout(state: &AppState, principal: &Principal) -> AppResult<()> {
    let mut store = state.db.conn().await?;
    store
        .revoke_session(principal.session_id, "logout", crate::db::now())
        .await?;
    drop(store);
    state
        .cache
        .invalidate(&[keys::session(principal.session_id)])
        .await;
    Ok(())
}

/// A user's role and disabled status, as the bearer check needs it (cached as `user:<id>`).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct UserStatus {
    /// `user` or `admin`.
    pub role: String,
    /// Disabled users are refused.
    pub disabled: bool,
}

async fn user_status(state: &AppState, id: Uuid) -> AppResult<Option<UserStatus>> {
    state
        .cache
        .get_or_load("user", keys::user(id), || async {
            let user = state.db.conn().await?.user_by_id(id).await?;
            Ok(user.map(|u| UserStatus {
                role: u.role,
                disabled: u.disabled,
            }))
        })
        .await
}

async fn session_state(state: &AppState, id: Uuid) -> AppResult<Option<SessionState>> {
    state
        .cache
        .get_or_load("session", keys::session(id), || async {
            Ok(state.db.conn().await?.session(id).await?)
        })
        .await
}

/// Verifies an access token and checks that its user is enabled and its session alive. Both
/// come from the cache; every change to them invalidates it on every instance.
pub async fn authenticate(state: &AppState, token: &str) -> AppResult<Principal> {
    let claims = state.tokens.verify(token)?;
    authenticate_claims(state, &claims).await
}

/// The rest of [`authenticate`], for claims already verified (by the rate limiter, which keys
/// authenticated requests by user).
pub async fn authenticate_claims(
    state: &AppState,
    claims: &tokens::Claims,
) -> AppResult<Principal> {
    const INVALID: &str = "the access token is invalid or expired";
    let session = session_state(state, claims.sid)
        .await?
        .filter(|s| s.user_id == claims.sub)
        .ok_or(AppError::Unauthorized(INVALID))?;
    let user = user_status(state, claims.sub)
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
        user_id: claims.sub,
        session_id: claims.sid,
        role: Role::from_stored(&user.role),
    })
}
