//! Audit storage: append and list (newest first).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// A stored audit entry.
#[derive(sqlx::FromRow)]
pub struct AuditRecord {
    /// UUIDv7, so ids sort by time.
    pub id: Uuid,
    /// When the change was made (the transaction's time).
    pub occurred_at: DateTime<Utc>,
    /// The user who made it; `None` for the command line.
    pub actor_id: Option<Uuid>,
    /// `<entity>.<verb>`, such as `task.updated`.
    pub action: String,
    /// `user`, `project`, `member` or `task`.
    pub entity_type: String,
    /// The changed entity (for `member`, the member's user id).
    pub entity_id: Uuid,
    /// The project the change belongs to; `None` for user changes.
    pub project_id: Option<Uuid>,
    /// The changed fields and their new values (never secrets).
    pub summary: Json<Value>,
    /// The `X-Request-Id` of the request that made it, `-` outside a request.
    pub request_id: String,
    /// The `INSTANCE_ID` of the instance that served it.
    pub instance_id: String,
}

/// Filters of an audit listing.
#[derive(Default)]
pub struct AuditFilter {
    /// Only this project's entries.
    pub project_id: Option<Uuid>,
    /// Only this actor's entries.
    pub actor_id: Option<Uuid>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this entity kind.
    pub entity_type: Option<String>,
}

/// Storage of the audit log.
#[async_trait]
pub trait AuditStore: Send {
    /// Appends an entry.
    async fn insert_audit(&mut self, entry: &AuditRecord) -> StoreResult<()>;
    /// Entries newest first, older than `before`, at most `limit`.
    async fn list_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>>;
}

crate::for_each_backend! {
    #[async_trait]
    impl AuditStore for Connection<DB> {
        async fn insert_audit(&mut self, e: &AuditRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO audit_log (id, occurred_at, actor_id, action, entity_type, entity_id, \
                 project_id, summary, request_id, instance_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(e.id)
            .bind(e.occurred_at)
            .bind(e.actor_id)
            .bind(&e.action)
            .bind(&e.entity_type)
            .bind(e.entity_id)
            .bind(e.project_id)
            .bind(&e.summary)
            .bind(&e.request_id)
            .bind(&e.instance_id)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn list_audit(
            &mut self,
            filter: &AuditFilter,
            before: Option<Uuid>,
            limit: u32,
        ) -> StoreResult<Vec<AuditRecord>> {
            let mut query = sqlx::QueryBuilder::<DB>::new(
                "SELECT id, occurred_at, actor_id, action, entity_type, entity_id, project_id, summary, \
                 request_id, instance_id FROM audit_log WHERE 1 = 1",
            );
            if let Some(project_id) = filter.project_id {
                query.push(" AND project_id = ").push_bind(project_id);
            }
            if let Some(actor_id) = filter.actor_id {
                query.push(" AND actor_id = ").push_bind(actor_id);
            }
            if let Some(action) = &filter.action {
                query.push(" AND action = ").push_bind(action.clone());
            }
            if let Some(entity_type) = &filter.entity_type {
                query.push(" AND entity_type = ").push_bind(entity_type.clone());
            }
            if let Some(before) = before {
                query.push(" AND id < ").push_bind(before);
            }
            query.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            Ok(query.build_query_as().fetch_all(self.db()).await?)
        }
    }
}
