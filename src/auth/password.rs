//! Password hashing with Argon2id at OWASP parameters (m = 19 MiB, t = 2, p = 1), run on the
//! blocking pool with at most one hash per core at a time, so logins cannot starve the async
//! workers or exhaust memory.

use std::sync::LazyLock;

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::validate::FieldChecks;

/// Shortest accepted password (characters).
pub const MIN_LEN: usize = 12;
/// Longest accepted password (characters).
pub const MAX_LEN: usize = 128;

/// Checks a new password's length ([`MIN_LEN`] to [`MAX_LEN`] characters).
pub fn check_new(checks: &mut FieldChecks, field: &str, value: &str) {
    let len = value.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        checks.fail(
            field,
            format!("must be {MIN_LEN} to {MAX_LEN} characters, got {len}"),
        );
    }
}

static HASHING_SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)));

/// A hash of a random password, verified against when an email is unknown so that a login
/// takes as long whether or not the account exists.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random: [u8; 16] = rand::random();
    hash_blocking(&hex::encode(random)).unwrap_or_default()
});

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP Argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let hash = argon2()
        .hash_password(password.as_bytes())
        .map_err(|err| anyhow::anyhow!("argon2 hashing failed: {err}"))?;
    Ok(hash.to_string())
}

/// Runs an Argon2 job on the blocking pool inside a `password.<operation>` span.
async fn on_blocking_pool<T: Send + 'static>(
    operation: &'static str,
    job: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let _span = crate::telemetry::span::child(
        operation,
        opentelemetry::trace::SpanKind::Internal,
        vec![opentelemetry::KeyValue::new(
            "password.algorithm",
            "argon2id",
        )],
    );
    let _slot = HASHING_SLOTS
        .acquire()
        .await
        .context("password hashing slots closed")?;
    tokio::task::spawn_blocking(job)
        .await
        .context("password hashing task failed")
}

/// Hashes a password (PHC string with a fresh random salt).
pub async fn hash(password: String) -> anyhow::Result<String> {
    on_blocking_pool("password.hash", move || hash_blocking(&password)).await?
}

/// Checks a password against a stored hash; `None` checks against a dummy hash and fails.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    on_blocking_pool("password.verify", move || {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let matches = argon2()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        known && matches
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let hash = hash("correct horse battery".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify("correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("wrong horse battery".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        assert!(!verify(String::new(), None).await.unwrap());
    }
}
