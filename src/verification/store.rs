//! Storage of email-verification tokens (only their SHA-256 is kept).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// A stored verification token, looked up by hash.
#[derive(sqlx::FromRow)]
pub struct VerificationTokenRecord {
    /// Whose address it verifies.
    pub user_id: Uuid,
    /// The address it was sent to (lower-case).
    pub email: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used; a token works once.
    pub used_at: Option<DateTime<Utc>>,
}

/// Storage of email-verification tokens.
#[async_trait]
pub trait VerificationStore: Send {
    /// Stores a token's hash for `user_id`'s address `email`.
    async fn insert_verification_token(
        &mut self,
        hash: &str,
        user_id: Uuid,
        email: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Deletes the user's unused tokens (a new link replaces the older ones).
    async fn delete_unused_verification_tokens(&mut self, user_id: Uuid) -> StoreResult<()>;
    /// A token by hash.
    async fn verification_token(
        &mut self,
        hash: &str,
    ) -> StoreResult<Option<VerificationTokenRecord>>;
    /// Marks an unused token used; false if it was already used (by a concurrent request too).
    async fn mark_verification_token_used(
        &mut self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Deletes up to `limit` tokens that expired or were used before `before`; returns how many.
    async fn delete_verification_tokens_before(
        &mut self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<u64>;
}

crate::for_each_backend! {
    #[async_trait]
    impl VerificationStore for Connection<DB> {
        async fn insert_verification_token(
            &mut self,
            hash: &str,
            user_id: Uuid,
            email: &str,
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        ) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO email_verification_tokens (token_hash, user_id, email, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hash)
            .bind(user_id)
            .bind(email)
            .bind(now)
            .bind(expires_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn delete_unused_verification_tokens(&mut self, user_id: Uuid) -> StoreResult<()> {
            sqlx::query("DELETE FROM email_verification_tokens WHERE user_id = $1 AND used_at IS NULL")
                .bind(user_id)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn verification_token(&mut self, hash: &str) -> StoreResult<Option<VerificationTokenRecord>> {
            Ok(sqlx::query_as(
                "SELECT user_id, email, expires_at, used_at FROM email_verification_tokens \
                 WHERE token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(self.db())
            .await?)
        }

        async fn mark_verification_token_used(&mut self, hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
            let result = sqlx::query(
                "UPDATE email_verification_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
            )
            .bind(hash)
            .bind(now)
            .execute(self.db())
            .await?;
            Ok(result.rows_affected() == 1)
        }

        async fn delete_verification_tokens_before(&mut self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
            let done = sqlx::query(
                "DELETE FROM email_verification_tokens WHERE token_hash IN \
                 (SELECT token_hash FROM email_verification_tokens \
                 WHERE expires_at < $1 OR used_at < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(self.db())
            .await?;
            Ok(done.rows_affected())
        }
    }
}
