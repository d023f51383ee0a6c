//! Idempotency-key storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// A remembered answer (always a 201 Created: only creating operations take a key).
#[derive(Debug, sqlx::FromRow)]
pub struct IdempotencyRecord {
    /// The user who sent the key (keys are per user).
    pub user_id: Uuid,
    /// The `Idempotency-Key` as sent: 1 to 255 visible ASCII characters.
    pub key: String,
    /// SHA-256 of the request.
    pub fingerprint: String,
    /// The answer's body (JSON).
    pub response_body: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it is forgotten.
    pub expires_at: DateTime<Utc>,
}

/// Storage of idempotency keys.
#[async_trait]
pub trait IdempotencyStore: Send {
    /// The record of `user_id`'s `key`, if any.
    async fn idempotency_key(
        &mut self,
        user_id: Uuid,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Stores a record; a `Conflict` if the key is taken.
    async fn insert_idempotency_key(&mut self, record: &IdempotencyRecord) -> StoreResult<()>;
    /// Deletes `user_id`'s `key` if it expired by `now`.
    async fn delete_expired_idempotency_key(
        &mut self,
        user_id: Uuid,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Deletes every key expired by `now`; returns how many.
    async fn delete_expired_idempotency_keys(&mut self, now: DateTime<Utc>) -> StoreResult<u64>;
}

crate::for_each_backend! {
    #[async_trait]
    impl IdempotencyStore for Connection<DB> {
        async fn idempotency_key(
            &mut self,
            user_id: Uuid,
            key: &str,
        ) -> StoreResult<Option<IdempotencyRecord>> {
            Ok(sqlx::query_as(
                "SELECT user_id, key, fingerprint, response_body, created_at, expires_at \
                 FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            )
            .bind(user_id)
            .bind(key)
            .fetch_optional(self.db())
            .await?)
        }

        async fn insert_idempotency_key(&mut self, r: &IdempotencyRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, response_body, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(r.user_id)
            .bind(&r.key)
            .bind(&r.fingerprint)
            .bind(&r.response_body)
            .bind(r.created_at)
            .bind(r.expires_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn delete_expired_idempotency_key(
            &mut self,
            user_id: Uuid,
            key: &str,
            now: DateTime<Utc>,
        ) -> StoreResult<()> {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND expires_at <= $3",
            )
            .bind(user_id)
            .bind(key)
            .bind(now)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn delete_expired_idempotency_keys(&mut self, now: DateTime<Utc>) -> StoreResult<u64> {
            Ok(sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                .bind(now)
                .execute(self.db())
                .await?
                .rows_affected())
        }
    }
}
