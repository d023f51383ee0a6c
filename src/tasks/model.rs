//! Task domain types and field limits.

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::tasks::store::TaskRecord;
use crate::validate::{FieldChecks, Text};

/// Longest title (characters).
pub const TITLE_MAX: usize = 200;
/// Longest description (characters).
pub const DESCRIPTION_MAX: usize = 10_000;
/// Most tags on one task.
pub const TAGS_MAX: usize = 20;
/// Longest tag (characters).
pub const TAG_MAX: usize = 40;
/// What a tag may contain, as the OpenAPI document states it ([`check_tags`] checks it).
pub const TAG_PATTERN: &str = "^[a-z0-9._:-]+$";

/// A task's title: one line of 1 to [`TITLE_MAX`] characters.
pub type Title = Text<1, TITLE_MAX>;
/// A task's description: up to [`DESCRIPTION_MAX`] characters, newlines allowed.
pub type Description = Text<0, DESCRIPTION_MAX>;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    Todo,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
}

impl TaskStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::InProgress => "in_progress",
            Self::Done => "done",
        }
    }

    /// Parses the stored form.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "in_progress" => Self::InProgress,
            "done" => Self::Done,
            _ => Self::Todo,
        }
    }
}

/// How urgent a task is; sorts `low` < `medium` < `high` < `urgent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Low.
    Low,
    /// Medium (the default).
    Medium,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

impl Priority {
    /// The stored rank, 1 (low) to 4 (urgent).
    pub fn rank(self) -> i32 {
        match self {
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
            Self::Urgent => 4,
        }
    }

    /// From the stored rank.
    pub fn from_rank(rank: i32) -> Self {
        match rank {
            1 => Self::Low,
            3 => Self::High,
            4 => Self::Urgent,
            _ => Self::Medium,
        }
    }
}

/// A task.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Task {
    /// Task id.
    pub id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// Title (1 to 200 characters, one line).
    #[oai(validator(max_length = 200))]
    pub title: String,
    /// Description (up to 10000 characters).
    #[oai(validator(max_length = 10000))]
    pub description: String,
    /// Status.
    pub status: TaskStatus,
    /// Priority.
    pub priority: Priority,
    /// The member it is assigned to, if any.
    #[oai(nullable)]
    pub assignee_id: Option<Uuid>,
    /// When it is due, if ever.
    #[oai(nullable)]
    pub due_at: Option<DateTime<Utc>>,
    /// Tags (up to 20, each 1 to 40 characters of `a-z 0-9 . _ : -`), sorted.
    #[oai(validator(max_items = 20, max_length = 40, pattern = "^[a-z0-9._:-]+$"))]
    pub tags: Vec<String>,
    /// Who created it.
    pub created_by: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// How many comments the task has. Adding or deleting a comment changes the task's
    /// `version` (and so its `ETag`).
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub comment_count: i32,
    /// Incremented on every change; the `ETag` is `"v<version>"`.
    #[oai(validator(minimum(value = "1"), maximum(value = "2147483647")))]
    pub version: i32,
}

impl Task {
    /// A stored task with its tags.
    pub fn new(record: TaskRecord, tags: Vec<String>) -> Self {
        Self {
            id: record.id,
            project_id: record.project_id,
            title: record.title,
            description: record.description,
            status: TaskStatus::from_stored(&record.status),
            priority: Priority::from_rank(record.priority),
            assignee_id: record.assignee_id,
            due_at: record.due_at,
            tags,
            created_by: record.created_by,
            created_at: record.created_at,
            updated_at: record.updated_at,
            comment_count: record.comment_count,
            version: record.version,
        }
    }
}

/// The document's example task.
impl poem_openapi::types::Example for Task {
    fn example() -> Self {
        let at = crate::http::openapi::example_time();
        Self {
            id: Uuid::from_u128(0x0194f0aa_2b1c_7d3e_8f40_5a6b7c8d9e0f),
            project_id: Uuid::from_u128(0x0194f0a9_1111_7222_8333_444455556666),
            title: "Write the release notes".to_owned(),
            description: "Cover the new caching headers.".to_owned(),
            status: TaskStatus::InProgress,
            priority: Priority::High,
            assignee_id: None,
            due_at: None,
            tags: vec!["docs".to_owned(), "release".to_owned()],
            created_by: Uuid::from_u128(0x0194f0a8_aaaa_7bbb_8ccc_dddddddddddd),
            created_at: at,
            updated_at: at,
            comment_count: 1,
            version: 2,
        }
    }
}

/// A task's tags as a request sends them; the OpenAPI schema states the limits of
/// [`check_tags`]: at most [`TAGS_MAX`], each 1 to [`TAG_MAX`] characters of [`TAG_PATTERN`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct TagList(pub Vec<String>);

crate::schema_newtype!([] TagList, Vec<String>, "[string]", {
    let mut tag = MetaSchema::new("string");
    tag.min_length = Some(1);
    tag.max_length = Some(TAG_MAX);
    tag.pattern = Some(TAG_PATTERN.to_owned());
    let mut list = MetaSchema::new("array");
    list.items = Some(Box::new(MetaSchemaRef::Inline(Box::new(tag))));
    list.max_items = Some(TAGS_MAX);
    list
});

/// Checks a tag list: count, length, characters, duplicates.
pub fn check_tags(checks: &mut FieldChecks, tags: &[String]) {
    if tags.len() > TAGS_MAX {
        checks.fail(
            "tags",
            format!("must have at most {TAGS_MAX} tags, got {}", tags.len()),
        );
        return;
    }
    for (i, tag) in tags.iter().enumerate() {
        let field = format!("tags[{i}]");
        let len = tag.chars().count();
        if !(1..=TAG_MAX).contains(&len) {
            checks.fail(
                &field,
                format!("must be 1 to {TAG_MAX} characters, got {len}"),
            );
        } else if !tag.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b':' | b'-')
        }) {
            checks.fail(&field, "may contain only a-z, 0-9, '.', '_', ':' and '-'");
        } else if tags[..i].contains(tag) {
            checks.fail(&field, "is a duplicate");
        }
    }
}

/// Truncates a time to microseconds, the precision both databases keep.
pub fn to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}
