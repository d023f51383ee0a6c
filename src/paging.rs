//! Opaque cursors for keyset pagination.
//!
//! A cursor is base64url of a small JSON document holding the last row's sort key and a
//! fingerprint of the query it belongs to; a cursor used with other filters or another sort is
//! refused (400) rather than silently returning a wrong page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// Longest cursor accepted, before any decoding is attempted.
const MAX_CURSOR_LEN: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Envelope<Q, K> {
    /// Query fingerprint.
    q: Q,
    /// Sort key of the last row on the previous page.
    k: K,
}

/// A short, stable fingerprint of a query's filters and sort (not a security measure).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..6])
}

/// Encodes the key of the last row of a page.
pub fn encode<K: Serialize>(query: &str, key: &K) -> String {
    let json = serde_json::to_vec(&Envelope { q: query, k: key }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor made by [`encode`] for the same query fingerprint.
pub fn decode<K: DeserializeOwned>(query: &str, cursor: &str) -> Result<K, AppError> {
    let invalid = || AppError::field("cursor", "is not a cursor returned by this list");
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let envelope: Envelope<String, K> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if envelope.q != query {
        return Err(AppError::field(
            "cursor",
            "belongs to a list with other filters or another sort; start again without a cursor",
        ));
    }
    Ok(envelope.k)
}

/// One page of a keyset-paginated list: the query's fingerprint, the key where the previous page
/// ended, and the page size.
pub struct Paging<K> {
    fingerprint: String,
    /// The sort key of the previous page's last row (`None` for the first page).
    pub after: Option<K>,
    limit: u32,
}

impl<K: Serialize + DeserializeOwned> Paging<K> {
    /// Decodes `cursor` for the query described by `parts` (its filters and sort).
    pub fn new(parts: &[&str], cursor: Option<&str>, limit: u32) -> Result<Self, AppError> {
        let fingerprint = fingerprint(parts);
        let after = cursor.map(|c| decode(&fingerprint, c)).transpose()?;
        Ok(Self {
            fingerprint,
            after,
            limit,
        })
    }

    /// How many rows to fetch: one more than a page, to learn whether another page follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// Cuts `rows` to the page and converts them: the page's items and the next page's
    /// cursor, if there is one.
    pub fn page<T, U: From<T>>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> K,
    ) -> (Vec<U>, Option<String>) {
        let next = self.finish(&mut rows, key);
        (rows.into_iter().map(U::from).collect(), next)
    }

    /// Cuts `rows` to the page and returns the next page's cursor, if there is one.
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> K) -> Option<String> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        more.then(|| {
            rows.last()
                .map(|last| encode(&self.fingerprint, &key(last)))
        })
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_for_the_same_query() {
        let q = fingerprint(&["created_at", "asc"]);
        let cursor = encode(&q, &("2026-01-01T00:00:00Z", 42));
        let key: (String, i32) = decode(&q, &cursor).unwrap();
        assert_eq!(key, ("2026-01-01T00:00:00Z".to_owned(), 42));
    }

    #[test]
    fn a_cursor_for_another_query_is_refused() {
        let cursor = encode(&fingerprint(&["a"]), &1);
        let err = decode::<i32>(&fingerprint(&["b"]), &cursor).unwrap_err();
        assert!(matches!(err, AppError::Validation(ref f) if f[0].field == "cursor"));
    }

    #[test]
    fn garbage_is_a_field_error_not_a_panic() {
        for garbage in ["", "!!!", "eyJ9", &"A".repeat(5000)] {
            assert!(decode::<i32>("x", garbage).is_err());
        }
    }
}
