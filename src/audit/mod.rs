//! The audit log: every change to a project, member, task, or user role or status appends an
//! entry in the same transaction as the change. Owners read their project's log; admins read all.

pub mod api;
pub mod store;

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use serde_json::Value;
use uuid::Uuid;

use crate::db::{Store, StoreResult};
use crate::http::request_id;
use store::AuditRecord;

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
}

/// Appends an entry for `change` by `actor`, stamped with the request id and instance id.
pub async fn record(
    store: &mut dyn Store,
    instance_id: &str,
    actor: Option<Uuid>,
    change: Change,
) -> StoreResult<()> {
    let entry = AuditRecord {
        id: Uuid::now_v7(),
        occurred_at: crate::db::now(),
        actor_id: actor,
        action: change.action.to_owned(),
        entity_type: change.entity_type.to_owned(),
        entity_id: change.entity_id,
        project_id: change.project_id,
        summary: sqlx::types::Json(change.summary),
        request_id: request_id::current(),
        instance_id: instance_id.to_owned(),
    };
    store.insert_audit(&entry).await
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
    pub action: String,
    /// `user`, `project`, `member` or `task`.
    pub entity_type: String,
    /// The changed entity's id (for `member`, the member's user id).
    pub entity_id: Uuid,
    /// The project the change belongs to, if any.
    #[oai(nullable)]
    pub project_id: Option<Uuid>,
    /// The changed fields and their new values.
    pub summary: Value,
    /// The request that made the change.
    pub request_id: String,
    /// The instance that served it.
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
