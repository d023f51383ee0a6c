//! What the audit log holds: a change as a domain function describes it, and an entry as the
//! API shows it.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::store::AuditRecord;

/// One change to record.
pub struct Change {
    /// What happened, as `<entity>.<verb>` (`task.updated`).
    pub action: &'static str,
    /// The kind of entity changed (`task`).
    pub entity_type: &'static str,
    /// Its id.
    pub entity_id: Uuid,
    /// The project it belongs to, if any (for the project's own log).
    pub project_id: Option<Uuid>,
    /// The changed fields (never passwords, hashes or tokens).
    pub summary: Value,
    /// The resource after the change, as the API shows it (for a deletion, what identifies
    /// the deleted resource): the `data` of the change's event.
    pub resource: Value,
}

/// `model` as the API shows it, for [`Change::resource`].
pub fn resource<T: poem_openapi::types::ToJSON>(model: &T) -> Value {
    model.to_json().unwrap_or(Value::Null)
}

/// An audit entry as the API shows it.
#[derive(Debug, Clone, Object)]
pub struct AuditEntry {
    /// Entry id (time-ordered UUIDv7).
    pub id: Uuid,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// Who made it (`null` for changes made from the command line).
    #[oai(nullable)]
    pub actor_id: Option<Uuid>,
    /// What happened, as `<entity>.<verb>`: `project.created`, `member.removed`, `task.updated`, ...
    #[oai(validator(max_length = 64, pattern = "^[a-z_]+\\.[a-z_]+$"))]
    pub action: String,
    /// `user`, `project`, `member` or `task`.
    #[oai(validator(max_length = 32, pattern = "^[a-z_]+$"))]
    pub entity_type: String,
    /// The changed entity's id (for `member`, the member's user id).
    pub entity_id: Uuid,
    /// The project the change belongs to, if any.
    #[oai(nullable)]
    pub project_id: Option<Uuid>,
    /// The changed fields and their new values.
    pub summary: Value,
    /// The request that made the change.
    #[oai(validator(max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$"))]
    pub request_id: String,
    /// The instance that served it.
    #[oai(validator(max_length = 64, pattern = "^[A-Za-z0-9._-]*$"))]
    pub instance_id: String,
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            occurred_at: r.occurred_at,
            actor_id: r.actor_id,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            project_id: r.project_id,
            summary: r.summary.0,
            request_id: r.request_id,
            instance_id: r.instance_id,
        }
    }
}
