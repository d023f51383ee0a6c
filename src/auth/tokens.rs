//! Access tokens (HS256 JWTs, algorithm pinned, `iss`/`aud`/`exp`/`iat`/`sub`/`jti` checked)
//! and refresh tokens (opaque random values, stored only as SHA-256 hashes).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::AppError;

/// The `iss` of every access token.
pub const ISSUER: &str = "tasklight";
/// The `aud` of every access token.
pub const AUDIENCE: &str = "tasklight-api";
/// Clock skew tolerated on `exp` and `iat`, in seconds.
const LEEWAY_SECS: i64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session (refresh-token family) id.
    pub sid: Uuid,
    /// A random id of this token (UUIDv4).
    pub jti: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// An access token whose signature and claims were already checked in this request (by the
/// rate limiter, which keys authenticated requests by user), so the bearer check does not
/// verify it twice.
#[derive(Clone)]
pub struct VerifiedToken {
    /// The token as sent.
    pub token: String,
    /// Its verified claims.
    pub claims: Arc<Claims>,
}

/// Verified tokens kept at most (about 0.5 KiB each).
const VERIFIED_CAPACITY: u64 = 10_000;
/// Longest a verified token is kept without being verified again.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Signs and verifies access tokens with the shared HMAC key.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// Tokens whose signature and claims were verified lately, by their exact text. A request
    /// that presents the same text again skips the HMAC and the JSON decoding (about 2 µs of
    /// the ~25 µs of a cached read); its expiry is still checked on every use, and a different
    /// text, however similar, is verified in full. Revocation is not decided here: the session
    /// check after this one runs on every request.
    verified: moka::sync::Cache<Box<str>, Arc<Claims>, foldhash::fast::RandomState>,
}

impl TokenKeys {
    /// Keys from the configured secret; tokens live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS as u64;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    /// Access-token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues an access token for a user's session.
    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id,
            sid: session_id,
            jti: Uuid::new_v4(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and issue time.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, AppError> {
        let invalid = || AppError::Unauthorized("the access token is invalid or expired");
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = self.verified.get(token) {
            return if now <= claims.exp + LEEWAY_SECS {
                Ok(claims)
            } else {
                self.verified.invalidate(token);
                Err(invalid())
            };
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| invalid())?;
        if data.claims.iat > now + LEEWAY_SECS {
            return Err(invalid());
        }
        let claims = Arc::new(data.claims);
        self.verified.insert(token.into(), claims.clone());
        Ok(claims)
    }
}

/// A new refresh token: the value for the client and the hash to store.
pub fn new_refresh_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// A random single-use token (an email-verification link's) and its stored form, made as
/// refresh tokens are: 256 random bits, base64url; only the SHA-256 is stored.
pub fn new_single_use_token() -> (String, String) {
    new_refresh_token()
}

/// The stored form of a single-use token.
pub fn hash_single_use_token(token: &str) -> String {
    hash_refresh_token(token)
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], Duration::from_secs(900))
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let claims = keys()
            .verify(&keys().issue(user, session).unwrap())
            .unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let other = TokenKeys::new(&[8u8; 32], Duration::from_secs(900));
        let token = other.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        assert!(keys().verify(&token).is_err());
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let token = keys().issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let mut parts = token.split('.');
        let (_, payload) = (parts.next(), parts.next().unwrap());
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys().verify(&format!("{none_header}.{payload}.")).is_err());
        assert!(keys().verify("not-a-token").is_err());
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let keys = keys();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now - 100,
            exp: now + 100,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_ok());
        assert!(keys.verified.contains_key(token.as_str()));
        // The remembered claims now say the token expired: the next use is refused.
        keys.verified.insert(
            token.as_str().into(),
            Arc::new(Claims {
                exp: now - LEEWAY_SECS - 1,
                ..claims.clone()
            }),
        );
        assert!(keys.verify(&token).is_err());
        // A token that differs from a remembered one in its signature is verified in full.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify(&forged).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, hash_a) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(hash_a, hash_refresh_token(&a));
        assert!(!hash_a.contains(&a));
    }
}
