//! An activity entry as the API shows it, and the changes a task write reports.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde_json::Value;
use uuid::Uuid;

use crate::activity::store::ActivityRecord;

/// What happened to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ActivityAction {
    /// The task was created; `new_value` holds its first fields.
    Created,
    /// One field changed: `field`, `old_value` and `new_value` say which and how.
    Updated,
}

impl ActivityAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "created" => Self::Created,
            _ => Self::Updated,
        }
    }
}

/// The task fields whose changes are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TaskField {
    /// The title.
    Title,
    /// The description.
    Description,
    /// The status.
    Status,
    /// The priority.
    Priority,
    /// The assignee (`null` when unassigned).
    AssigneeId,
    /// The due time (`null` when never due).
    DueAt,
    /// The tags (sorted).
    Tags,
}

impl TaskField {
    /// Every field, in the order of the task document.
    pub const ALL: [Self; 7] = [
        Self::Title,
        Self::Description,
        Self::Status,
        Self::Priority,
        Self::AssigneeId,
        Self::DueAt,
        Self::Tags,
    ];

    /// The field's name in the task document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Description => "description",
            Self::Status => "status",
            Self::Priority => "priority",
            Self::AssigneeId => "assignee_id",
            Self::DueAt => "due_at",
            Self::Tags => "tags",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// One change to a task field, as a task write reports it.
pub struct FieldChange {
    /// The field.
    pub field: TaskField,
    /// Its value before the change, as in the task document.
    pub old: Value,
    /// Its value after the change, as in the task document.
    pub new: Value,
}

/// One entry of a task's activity.
#[derive(Debug, Clone, Object)]
pub struct ActivityEntry {
    /// Entry id (time-ordered UUIDv7).
    pub id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// Who made it (`null` for changes made from the command line).
    #[oai(nullable)]
    pub actor_id: Option<Uuid>,
    /// What happened.
    pub action: ActivityAction,
    /// The field that changed (`null` for `created`).
    #[oai(nullable)]
    pub field: Option<TaskField>,
    /// The field's value before the change, as in the task document (`null` for `created`, and
    /// when the field was empty).
    #[oai(nullable)]
    pub old_value: Option<Value>,
    /// The field's value after the change (for `created`, the task's first fields).
    #[oai(nullable)]
    pub new_value: Option<Value>,
    /// The request that made the change (the `X-Request-Id` of its answer).
    #[oai(validator(max_length = 128))]
    pub request_id: String,
}

impl From<ActivityRecord> for ActivityEntry {
    fn from(r: ActivityRecord) -> Self {
        Self {
            id: r.id,
            task_id: r.task_id,
            occurred_at: r.occurred_at,
            actor_id: r.actor_id,
            action: ActivityAction::parse(&r.action),
            field: r.field.as_deref().and_then(TaskField::parse),
            old_value: r.old_value.map(|v| v.0).filter(|v| !v.is_null()),
            new_value: r.new_value.map(|v| v.0).filter(|v| !v.is_null()),
            request_id: r.request_id,
        }
    }
}

/// What a task write did, for the task's activity.
pub enum TaskActivity {
    /// The task was created with these fields (as in its document).
    Created(Value),
    /// These fields changed.
    Updated(Vec<FieldChange>),
}

impl TaskActivity {
    /// The entries of this activity on `task_id`, stamped with the time, the actor and the
    /// request.
    pub fn records(
        self,
        task_id: Uuid,
        occurred_at: DateTime<Utc>,
        actor_id: Option<Uuid>,
        request_id: &str,
    ) -> Vec<ActivityRecord> {
        let record = |action: ActivityAction,
                      field: Option<TaskField>,
                      old: Option<Value>,
                      new: Option<Value>| ActivityRecord {
            id: Uuid::now_v7(),
            task_id,
            occurred_at,
            actor_id,
            action: action.as_str().to_owned(),
            field: field.map(|f| f.as_str().to_owned()),
            old_value: old.map(sqlx::types::Json),
            new_value: new.map(sqlx::types::Json),
            request_id: request_id.to_owned(),
        };
        match self {
            Self::Created(fields) => {
                vec![record(ActivityAction::Created, None, None, Some(fields))]
            }
            Self::Updated(changes) => changes
                .into_iter()
                .map(|c| {
                    record(
                        ActivityAction::Updated,
                        Some(c.field),
                        Some(c.old),
                        Some(c.new),
                    )
                })
                .collect(),
        }
    }
}
