//! Storage of login sessions (refresh-token families) and refresh tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// What the bearer check needs to know about a token's user and session.
#[derive(sqlx::FromRow)]
pub struct PrincipalState {
    /// The user's current role.
    pub role: String,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// When the session was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the session ends regardless of refreshes.
    pub expires_at: DateTime<Utc>,
}

/// A login session's state, as the bearer check needs it (cached as `session:<id>`).
#[derive(Clone, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct SessionState {
    /// Whose session it is.
    pub user_id: Uuid,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it ends regardless of refreshes.
    pub expires_at: DateTime<Utc>,
}

/// A stored refresh token, looked up by hash.
#[derive(sqlx::FromRow)]
pub struct RefreshTokenRecord {
    /// Its session.
    pub session_id: Uuid,
    /// The session's user.
    pub user_id: Uuid,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// When it was rotated; a second use is reuse.
    pub used_at: Option<DateTime<Utc>>,
}

/// Storage of sessions and refresh tokens.
#[async_trait]
pub trait AuthStore: Send {
    /// Creates a session for `user_id`, ending at `expires_at`.
    async fn insert_session(
        &mut self,
        id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Stores a refresh token's hash.
    async fn insert_refresh_token(
        &mut self,
        hash: &str,
        session_id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// A refresh token by hash, with its session's user.
    async fn refresh_token(&mut self, hash: &str) -> StoreResult<Option<RefreshTokenRecord>>;
    /// Marks an unused token used; false if it was already used (by a concurrent request too).
    async fn mark_refresh_token_used(
        &mut self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Revokes one session (no-op if already revoked).
    async fn revoke_session(
        &mut self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Revokes every live session of a user; returns the sessions it revoked.
    async fn revoke_user_sessions(
        &mut self,
        user_id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;
    /// A session's state.
    async fn session(&mut self, id: Uuid) -> StoreResult<Option<SessionState>>;
    /// Deletes up to `limit` sessions that ended (expired) before `before`, with their refresh
    /// tokens; returns how many sessions.
    async fn delete_sessions_expired_before(
        &mut self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<u64>;
    /// The user's role and status with the session's state, if both exist and belong together.
    async fn principal_state(
        &mut self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> StoreResult<Option<PrincipalState>>;
}

crate::for_each_backend! {
    #[async_trait]
    impl AuthStore for Connection<DB> {
        async fn insert_session(
            &mut self,
            id: Uuid,
            user_id: Uuid,
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        ) -> StoreResult<()> {
            sqlx::query("INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(user_id)
                .bind(now)
                .bind(expires_at)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn insert_refresh_token(
            &mut self,
            hash: &str,
            session_id: Uuid,
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        ) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(hash)
            .bind(session_id)
            .bind(now)
            .bind(expires_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn refresh_token(&mut self, hash: &str) -> StoreResult<Option<RefreshTokenRecord>> {
            Ok(sqlx::query_as(
                "SELECT t.session_id, s.user_id, t.expires_at, t.used_at \
                 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(self.db())
            .await?)
        }

        async fn mark_refresh_token_used(&mut self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
            let result = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
            )
            .bind(hash)
            .bind(now)
            .execute(self.db())
            .await?;
            Ok(result.rows_affected() == 1)
        }

        async fn revoke_session(&mut self, id: Uuid, reason: &str, now: DateTime<Utc>) -> StoreResult<()> {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .bind(reason)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn revoke_user_sessions(
            &mut self,
            user_id: Uuid,
            reason: &str,
            now: DateTime<Utc>,
        ) -> StoreResult<Vec<Uuid>> {
            let revoked: Vec<(Uuid,)> = sqlx::query_as(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
                 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
            )
            .bind(user_id)
            .bind(now)
            .bind(reason)
            .fetch_all(self.db())
            .await?;
            Ok(revoked.into_iter().map(|(id,)| id).collect())
        }

        async fn session(&mut self, id: Uuid) -> StoreResult<Option<SessionState>> {
            Ok(sqlx::query_as("SELECT user_id, revoked_at, expires_at FROM sessions WHERE id = $1")
                .bind(id)
                .fetch_optional(self.db())
                .await?)
        }

        async fn delete_sessions_expired_before(&mut self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
            // Refresh tokens go with their session (ON DELETE CASCADE).
            let done = sqlx::query(
                "DELETE FROM sessions WHERE id IN \
                 (SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(self.db())
            .await?;
            Ok(done.rows_affected())
        }

        async fn principal_state(&mut self, user_id: Uuid, session_id: Uuid) -> StoreResult<Option<PrincipalState>> {
            Ok(sqlx::query_as(
                "SELECT u.role, u.disabled, s.revoked_at, s.expires_at \
                 FROM users u JOIN sessions s ON s.user_id = u.id WHERE u.id = $1 AND s.id = $2",
            )
            .bind(user_id)
            .bind(session_id)
            .fetch_optional(self.db())
            .await?)
        }
    }
}
