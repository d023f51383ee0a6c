//! Audit storage: append and list (newest first).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{Session, StoreResult};

/// A stored audit entry.
#[derive(sqlx::FromRow)]
pub struct AuditRecord {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// Who.
    pub actor_id: Option<Uuid>,
    /// What.
    pub action: String,
    /// Entity kind.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Uuid,
    /// Project, if any.
    pub project_id: Option<Uuid>,
    /// Changed fields.
    pub summary: Json<Value>,
    /// Request id.
    pub request_id: String,
    /// Instance id.
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
pub trait AuditStore {
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
    impl AuditStore for Session<DB> {
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
