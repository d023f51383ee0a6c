//! The one domain error type. `http::problem` is the one place that turns it into HTTP.

use crate::db::StoreError;
use crate::ratelimit::Decision;

/// One invalid input field: its name (a JSON path for bodies) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as the client named it (`title`, `tags[3]`, `limit`).
    pub field: String,
    /// Why the value was refused, in words a developer can act on.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a domain function can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input was invalid; each field says why (400).
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// Missing or unusable credentials (401). The text is safe to show.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Absent, or hidden from this caller (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// An `If-Match` precondition did not hold (412).
    #[error("the resource has changed since it was read: fetch it again and retry")]
    PreconditionFailed,
    /// The request is well-formed but cannot be processed as sent (422): an idempotency key
    /// reused for a different request.
    #[error("{0}")]
    Unprocessable(&'static str),
    /// A rate limit refused the request (429).
    #[error("too many requests")]
    RateLimited(Box<Decision>),
    /// The caller holds as many of a limited resource as allowed (429; the text says which).
    #[error("{0}")]
    TooMany(&'static str),
    /// A dependency (database pool) is saturated or down (503).
    #[error("the service is temporarily unavailable: {0}")]
    Unavailable(&'static str),
    /// Anything else: logged with its cause chain, answered with a generic message (500).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A copy, for an error shared by several waiters (a cache load); internal errors keep
    /// their message and lose their source chain.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Validation(fields) => Self::Validation(fields.clone()),
            Self::Unauthorized(m) => Self::Unauthorized(m),
            Self::Forbidden(m) => Self::Forbidden(m),
            Self::NotFound(m) => Self::NotFound(m),
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::PreconditionFailed => Self::PreconditionFailed,
            Self::Unprocessable(m) => Self::Unprocessable(m),
            Self::RateLimited(decision) => Self::RateLimited(decision.clone()),
            Self::TooMany(m) => Self::TooMany(m),
            Self::Unavailable(m) => Self::Unavailable(m),
            Self::Internal(e) => Self::Internal(anyhow::anyhow!("{e:#}")),
        }
    }

    /// A validation error on one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::PoolTimedOut => Self::Unavailable("the database is busy, retry shortly"),
            StoreError::Other(err) => Self::Internal(anyhow::Error::new(err).context("database")),
        }
    }
}

impl From<Decision> for AppError {
    fn from(refusal: Decision) -> Self {
        Self::RateLimited(Box::new(refusal))
    }
}

/// Result of a domain function.
pub type AppResult<T> = Result<T, AppError>;
