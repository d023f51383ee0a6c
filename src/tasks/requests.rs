//! The bodies of task creation and change, and the limits they are checked against.

use chrono::{DateTime, Datelike, Utc};
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::FieldError;
use crate::http::body::{Checks, Validate};
use crate::tasks::model::{DESCRIPTION_MAX, Priority, TITLE_MAX, TaskStatus, check_tags};

/// A new task.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Title (1 to 200 characters, one line).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub title: String,
    /// Description (up to 10000 characters).
    #[oai(validator(max_length = 10000))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub description: Option<String>,
    /// Status (default `todo`).
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub status: Option<TaskStatus>,
    /// Priority (default `medium`).
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
    #[oai(validator(
        max_items = 20,
        min_length = 1,
        max_length = 40,
        pattern = "^[a-z0-9._:-]+$"
    ))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub tags: Option<Vec<String>>,
}

fn check_due(checks: &mut Checks, due_at: Option<&DateTime<Utc>>) {
    if due_at.is_some_and(|d| !(1900..=9998).contains(&d.year())) {
        checks.fail("due_at", "must be between the years 1900 and 9998");
    }
}

impl Validate for CreateTaskRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = Checks::default();
        checks.line("title", &self.title, 1, TITLE_MAX);
        if let Some(description) = &self.description {
            checks.text("description", description, 0, DESCRIPTION_MAX);
        }
        check_due(&mut checks, self.due_at.as_ref());
        check_tags(&mut checks, self.tags.as_deref().unwrap_or_default());
        checks.finish()
    }
}

/// Changes to a task; omitted fields stay as they are, `null` clears `assignee_id` and `due_at`.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    /// New title (1 to 200 characters, one line).
    #[oai(validator(min_length = 1, max_length = 200))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub title: Option<String>,
    /// New description (up to 10000 characters).
    #[oai(validator(max_length = 10000))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub description: Option<String>,
    /// New status.
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub status: Option<TaskStatus>,
    /// New priority.
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub priority: Option<Priority>,
    /// New assignee (a member of the project), or `null` to unassign.
    #[oai(nullable)]
    #[serde(default)]
    pub assignee_id: MaybeUndefined<Uuid>,
    /// New due time, or `null` to clear it.
    #[oai(nullable)]
    #[serde(default)]
    pub due_at: MaybeUndefined<DateTime<Utc>>,
    /// New tags, replacing the old ones (same rules as on creation).
    #[oai(validator(
        max_items = 20,
        min_length = 1,
        max_length = 40,
        pattern = "^[a-z0-9._:-]+$"
    ))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub tags: Option<Vec<String>>,
}

impl Validate for UpdateTaskRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = Checks::default();
        if let Some(title) = &self.title {
            checks.line("title", title, 1, TITLE_MAX);
        }
        if let Some(description) = &self.description {
            checks.text("description", description, 0, DESCRIPTION_MAX);
        }
        check_due(&mut checks, self.due_at.value());
        check_tags(&mut checks, self.tags.as_deref().unwrap_or_default());
        checks.finish()
    }
}
