//! The bodies of task creation and change. Their limits are the constants of `tasks::model`:
//! the field types carry them into the OpenAPI document, and one set of checks applies them to
//! both bodies.

use chrono::{DateTime, Datelike, Utc};
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::FieldError;
use crate::tasks::model::{Description, Priority, TagList, TaskStatus, Title, check_tags};
use crate::validate::{FieldChecks, Validate};

/// A new task.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Title (1 to 200 characters, one line).
    pub title: Title,
    /// Description (up to 10000 characters).
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub description: Option<Description>,
    /// Status (default `todo`).
    #[oai(default = "default_status")]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub status: Option<TaskStatus>,
    /// Priority (default `medium`).
    #[oai(default = "default_priority")]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub priority: Option<Priority>,
    /// A member of the project to assign it to (`null` or absent: unassigned).
    #[oai(nullable)]
    #[serde(default)]
    pub assignee_id: Option<Uuid>,
    /// When it is due (RFC 3339; stored in UTC at microsecond precision; `null` or absent: never).
    #[oai(nullable)]
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
    /// Tags: up to 20, each 1 to 40 characters of `a-z 0-9 . _ : -`, no duplicates.
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub tags: Option<TagList>,
}

/// A new task's status when the body has none (stated in the document).
fn default_status() -> Option<TaskStatus> {
    Some(TaskStatus::Todo)
}

/// A new task's priority when the body has none (stated in the document).
fn default_priority() -> Option<Priority> {
    Some(Priority::Medium)
}

impl Validate for CreateTaskRequest {
    fn validate(&self) -> Vec<FieldError> {
        check_fields(
            Some(&self.title),
            self.description.as_ref(),
            self.due_at.as_ref(),
            self.tags.as_ref(),
        )
    }
}

/// Changes to a task; omitted fields stay as they are, `null` clears `assignee_id` and `due_at`.
#[derive(Object, Deserialize, Default)]
#[oai(deny_unknown_fields)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateTaskRequest {
    /// New title (1 to 200 characters, one line).
    #[serde(deserialize_with = "crate::http::body::present")]
    pub title: Option<Title>,
    /// New description (up to 10000 characters).
    #[serde(deserialize_with = "crate::http::body::present")]
    pub description: Option<Description>,
    /// New status.
    #[serde(deserialize_with = "crate::http::body::present")]
    pub status: Option<TaskStatus>,
    /// New priority.
    #[serde(deserialize_with = "crate::http::body::present")]
    pub priority: Option<Priority>,
    /// New assignee (a member of the project), or `null` to unassign.
    #[oai(nullable)]
    pub assignee_id: MaybeUndefined<Uuid>,
    /// New due time, or `null` to clear it.
    #[oai(nullable)]
    pub due_at: MaybeUndefined<DateTime<Utc>>,
    /// New tags, replacing the old ones (same rules as on creation).
    #[serde(deserialize_with = "crate::http::body::present")]
    pub tags: Option<TagList>,
}

impl Validate for UpdateTaskRequest {
    fn validate(&self) -> Vec<FieldError> {
        check_fields(
            self.title.as_ref(),
            self.description.as_ref(),
            self.due_at.value(),
            self.tags.as_ref(),
        )
    }
}

/// The checks of both bodies, on the fields that are present.
fn check_fields(
    title: Option<&Title>,
    description: Option<&Description>,
    due_at: Option<&DateTime<Utc>>,
    tags: Option<&TagList>,
) -> Vec<FieldError> {
    let mut checks = FieldChecks::default();
    if let Some(title) = title {
        title.check_line(&mut checks, "title");
    }
    if let Some(description) = description {
        description.check_text(&mut checks, "description");
    }
    if due_at.is_some_and(|d| !(1900..=9998).contains(&d.year())) {
        checks.fail("due_at", "must be between the years 1900 and 9998");
    }
    if let Some(tags) = tags {
        check_tags(&mut checks, &tags.0);
    }
    checks.finish()
}
