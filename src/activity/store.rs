//! Activity storage: append a write's entries, and list a task's (newest first).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// A stored activity entry.
#[derive(sqlx::FromRow)]
pub struct ActivityRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// The task it belongs to (entries go when the task goes).
    pub task_id: Uuid,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// Who made it.
    pub actor_id: Option<Uuid>,
    /// `created` or `updated`.
    pub action: String,
    /// The changed field (`None` for `created`).
    pub field: Option<String>,
    /// Its value before.
    pub old_value: Option<Json<Value>>,
    /// Its value after.
    pub new_value: Option<Json<Value>>,
    /// The request that made it.
    pub request_id: String,
}

/// Storage of task activity.
#[async_trait]
pub trait ActivityStore: Send {
    /// Appends entries.
    async fn insert_activity(&mut self, entries: &[ActivityRecord]) -> StoreResult<()>;
    /// A task's entries older than `before` (all when `None`), newest first.
    async fn list_activity(
        &mut self,
        task_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ActivityRecord>>;
}

crate::for_each_backend! {
    #[async_trait]
    impl ActivityStore for Connection<DB> {
        async fn insert_activity(&mut self, entries: &[ActivityRecord]) -> StoreResult<()> {
            if entries.is_empty() {
                return Ok(());
            }
            let mut query = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO task_activity (id, task_id, occurred_at, actor_id, action, field, \
                 old_value, new_value, request_id) ",
            );
            query.push_values(entries, |mut row, e| {
                row.push_bind(e.id)
                    .push_bind(e.task_id)
                    .push_bind(e.occurred_at)
                    .push_bind(e.actor_id)
                    .push_bind(e.action.clone())
                    .push_bind(e.field.clone())
                    .push_bind(e.old_value.clone())
                    .push_bind(e.new_value.clone())
                    .push_bind(e.request_id.clone());
            });
            query.build().execute(self.db()).await?;
            Ok(())
        }

        async fn list_activity(
            &mut self,
            task_id: Uuid,
            before: Option<Uuid>,
            limit: u32,
        ) -> StoreResult<Vec<ActivityRecord>> {
            let mut query = sqlx::QueryBuilder::<DB>::new(
                "SELECT id, task_id, occurred_at, actor_id, action, field, old_value, new_value, \
                 request_id FROM task_activity WHERE task_id = ",
            );
            query.push_bind(task_id);
            if let Some(before) = before {
                query.push(" AND id < ").push_bind(before);
            }
            query.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            Ok(query.build_query_as().fetch_all(self.db()).await?)
        }
    }
}
