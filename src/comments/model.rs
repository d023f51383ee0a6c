//! Comment domain types and the body's limits.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde::Deserialize;
use uuid::Uuid;

use crate::comments::store::CommentRecord;
use crate::error::FieldError;
use crate::validate::{FieldChecks, Text, Validate};

/// Longest comment body (characters).
pub const BODY_MAX: usize = 10_000;

/// A comment's body: Markdown, 1 to [`BODY_MAX`] characters, not blank; newlines allowed.
pub type CommentBody = Text<1, BODY_MAX>;

/// A comment on a task.
#[derive(Debug, Clone, Object)]
pub struct Comment {
    /// Comment id.
    pub id: Uuid,
    /// The task it is on.
    pub task_id: Uuid,
    /// Who wrote it.
    pub author_id: Uuid,
    /// The text, Markdown, exactly as written (1 to 10000 characters; not rendered by the
    /// server).
    #[oai(validator(min_length = 1, max_length = 10000))]
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was last edited (equal to `created_at` until then).
    pub updated_at: DateTime<Utc>,
    /// 1 when written, one more on every edit; the `ETag` is `"v<version>"`.
    #[oai(validator(minimum(value = "1"), maximum(value = "2147483647")))]
    pub version: i32,
}

impl From<CommentRecord> for Comment {
    fn from(record: CommentRecord) -> Self {
        Self {
            id: record.id,
            task_id: record.task_id,
            author_id: record.author_id,
            body: record.body,
            created_at: record.created_at,
            updated_at: record.updated_at,
            version: record.version,
        }
    }
}

/// A new comment, or a comment's new text.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// The text: Markdown, 1 to 10000 characters, not blank (stored as sent).
    pub body: CommentBody,
}

impl Validate for CommentRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        self.body.check_text(&mut checks, "body");
        checks.finish()
    }
}
