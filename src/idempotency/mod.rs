//! Idempotency keys for the creating POSTs (create project, create task): [`begin`] and
//! [`commit`] wrap the write of any creating domain function.
//!
//! A request with `Idempotency-Key` is fingerprinted (operation, path parameters, canonical JSON
//! body). Its answer is stored, keyed by user and key, in the same transaction as what it
//! created, so every instance sees both or neither. A repeat with the same key replays the
//! stored answer; the same key with a different request is a 422. Two concurrent requests with
//! one key create one resource: the loser's insert of the key fails on the primary key (after
//! waiting for the winner's transaction), its transaction rolls back, and it replays the
//! winner's answer. Keys expire after [`TTL`].

pub mod store;

use poem_openapi::types::{ParseFromJSON, ToJSON};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::StoreError;
use crate::domain::{DomainContext, UnitOfWork};
use crate::error::{AppError, AppResult};
use crate::store::Store;
use store::IdempotencyRecord;

/// How long a key is remembered.
pub const TTL: chrono::Duration = chrono::Duration::hours(24);

/// The request header.
pub const HEADER: &str = "Idempotency-Key";

/// What a request with an `Idempotency-Key` is remembered by.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    user_id: Uuid,
    key: String,
    fingerprint: String,
}

impl IdempotencyKey {
    /// The key of a request, if it sent one: `operation` and `scope` (its path parameters) and
    /// the body make the fingerprint. A malformed key is a 400 naming the header.
    pub fn from_request(
        user_id: Uuid,
        key: Option<&str>,
        operation: &str,
        scope: &str,
        body: &[u8],
    ) -> AppResult<Option<Self>> {
        let Some(key) = key else { return Ok(None) };
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppError::field(
                HEADER,
                "must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            ));
        }
        Ok(Some(Self {
            user_id,
            key: key.to_owned(),
            fingerprint: fingerprint(operation, scope, body),
        }))
    }

    /// The answer stored for this key, parsed back, if an earlier request stored one; a 422 if
    /// that request was a different one. Expired keys are deleted first.
    pub async fn stored<T: ParseFromJSON>(&self, store: &mut dyn Store) -> AppResult<Option<T>> {
        let now = crate::db::now();
        store
            .delete_expired_idempotency_key(self.user_id, &self.key, now)
            .await?;
        let Some(record) = store.idempotency_key(self.user_id, &self.key).await? else {
            return Ok(None);
        };
        if record.fingerprint != self.fingerprint {
            return Err(AppError::Unprocessable(
                "this Idempotency-Key was used for a different request; use a new key for a new request",
            ));
        }
        let value = serde_json::from_str(&record.response_body)
            .ok()
            .and_then(|json| T::parse_from_json(Some(json)).ok())
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "the stored answer of an idempotency key does not parse"
                ))
            })?;
        Ok(Some(value))
    }

    /// Stores the answer in the transaction that made it. `Ok(false)` when a concurrent request
    /// with the same key stored its answer first: roll back, then
    /// [`IdempotencyKey::replay_winner`].
    async fn remember<T: ToJSON>(&self, store: &mut dyn Store, body: &T) -> AppResult<bool> {
        let now = crate::db::now();
        let record = IdempotencyRecord {
            user_id: self.user_id,
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            response_body: body.to_json_string(),
            created_at: now,
            expires_at: now + TTL,
        };
        match store.insert_idempotency_key(&record).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// The answer of the concurrent request that stored this key first.
    async fn replay_winner<T: ParseFromJSON>(&self, db: &crate::db::Db) -> AppResult<T> {
        let mut store = crate::store::read(db).await?;
        self.stored(&mut *store).await?.ok_or_else(|| {
            AppError::Conflict(
                "a request with this Idempotency-Key failed while this one ran; retry".into(),
            )
        })
    }
}

/// How a creating write begins: with the answer an earlier request with the same key got, or
/// with the write to make.
pub enum Begun<'a, T> {
    /// The key was used before, for this very request: answer as it was answered.
    Replay(T),
    /// A new request: make the write, then [`commit`] it.
    Fresh(UnitOfWork<'a>),
}

/// Begins the write of a creating request by `actor`, which may carry an `Idempotency-Key`.
pub async fn begin<'a, T: ParseFromJSON>(
    context: &'a DomainContext,
    actor: Uuid,
    key: Option<&IdempotencyKey>,
) -> AppResult<Begun<'a, T>> {
    let mut work = context.begin(Some(actor)).await?;
    if let Some(key) = key
        && let Some(original) = key.stored(&mut *work).await?
    {
        return Ok(Begun::Replay(original));
    }
    Ok(Begun::Fresh(work))
}

/// The answer of a creating write, and whether this request made it.
pub struct Committed<T> {
    /// What the client gets.
    pub answer: T,
    /// `false` when a concurrent request with the same key won and this is its answer.
    pub created: bool,
}

/// Commits a creating write whose answer is `created`, remembering it under the key. When a
/// concurrent request with the same key stored its answer first, this write rolls back and the
/// answer is that request's.
pub async fn commit<T: ToJSON + ParseFromJSON>(
    mut work: UnitOfWork<'_>,
    key: Option<&IdempotencyKey>,
    created: T,
) -> AppResult<Committed<T>> {
    if let Some(key) = key
        && !key.remember(&mut *work, &created).await?
    {
        let db = work.context().db.clone();
        drop(work);
        return Ok(Committed {
            answer: key.replay_winner(&db).await?,
            created: false,
        });
    }
    work.commit().await?;
    Ok(Committed {
        answer: created,
        created: true,
    })
}

/// SHA-256 over the operation, the path parameters and the body with its object keys sorted
/// (so whitespace and key order do not matter).
fn fingerprint(operation: &str, scope: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|value| canonical_json(&value))
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    let mut hash = Sha256::new();
    for part in [operation, scope, canonical.as_str()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_whitespace_and_key_order_but_not_values() {
        let a = fingerprint("createTask", "p1", br#"{"title":"x","tags":["a","b"]}"#);
        let b = fingerprint(
            "createTask",
            "p1",
            b"{ \"tags\": [\"a\",\"b\"], \"title\": \"x\" }",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint("createTask", "p1", br#"{"title":"y","tags":["a","b"]}"#)
        );
        assert_ne!(
            a,
            fingerprint("createTask", "p2", br#"{"title":"x","tags":["a","b"]}"#)
        );
        assert_ne!(
            a,
            fingerprint("createProject", "p1", br#"{"title":"x","tags":["a","b"]}"#)
        );
        assert_ne!(
            a,
            fingerprint("createTask", "p1", br#"{"title":"x","tags":["b","a"]}"#)
        );
    }

    #[test]
    fn malformed_keys_are_refused_naming_the_header() {
        for bad in ["", "has space", &"k".repeat(256), "naïve"] {
            let err =
                IdempotencyKey::from_request(Uuid::nil(), Some(bad), "op", "", b"{}").unwrap_err();
            assert!(
                matches!(&err, AppError::Validation(f) if f[0].field == HEADER),
                "{bad}"
            );
        }
        assert!(
            IdempotencyKey::from_request(Uuid::nil(), None, "op", "", b"{}")
                .unwrap()
                .is_none()
        );
    }
}
