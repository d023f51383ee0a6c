//! Comment storage, and the task's comment count, which changes with it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// A stored comment.
#[derive(Clone, sqlx::FromRow)]
pub struct CommentRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// The task it is on.
    pub task_id: Uuid,
    /// The user who wrote it.
    pub author_id: Uuid,
    /// Markdown, 1 to 10000 characters.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    pub updated_at: DateTime<Utc>,
    /// 1 when written, one more on every edit.
    pub version: i32,
}

/// A comment with the project of its task (what authorization needs).
#[derive(sqlx::FromRow)]
pub struct CommentInProject {
    /// The comment.
    #[sqlx(flatten)]
    pub comment: CommentRecord,
    /// The project of the comment's task.
    pub project_id: Uuid,
}

/// Where the previous page of a task's comments ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommentKey {
    /// The last comment's `created_at`.
    pub created_at: DateTime<Utc>,
    /// The last comment's id (orders comments written in the same microsecond).
    pub id: Uuid,
}

/// Storage of comments.
#[async_trait]
pub trait CommentStore: Send {
    /// Inserts a comment.
    async fn insert_comment(&mut self, comment: &CommentRecord) -> StoreResult<()>;
    /// A comment with its task's project; in a PostgreSQL transaction with `lock`, the comment's
    /// row is locked until commit.
    async fn comment_by_id(
        &mut self,
        id: Uuid,
        lock: bool,
    ) -> StoreResult<Option<CommentInProject>>;
    /// Writes a comment's body, `updated_at` and version.
    async fn update_comment(&mut self, comment: &CommentRecord) -> StoreResult<()>;
    /// Deletes a comment.
    async fn delete_comment(&mut self, id: Uuid) -> StoreResult<()>;
    /// A task's comments, oldest first, after `after`; at most `limit`.
    async fn list_comments(
        &mut self,
        task_id: Uuid,
        after: Option<&CommentKey>,
        limit: u32,
    ) -> StoreResult<Vec<CommentRecord>>;
    /// Adds `delta` to a task's `comment_count` and bumps its version (the count is part of
    /// the task's document, which is cached and rendered by version).
    async fn change_comment_count(&mut self, task_id: Uuid, delta: i32) -> StoreResult<()>;
}

/// The columns of [`CommentRecord`].
macro_rules! comment_columns {
    () => {
        "c.id, c.task_id, c.author_id, c.body, c.created_at, c.updated_at, c.version"
    };
}

crate::for_each_backend! {
    use crate::db::Dialect;

    #[async_trait]
    impl CommentStore for Connection<DB> {
        async fn insert_comment(&mut self, c: &CommentRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO comments (id, task_id, author_id, body, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(c.id)
            .bind(c.task_id)
            .bind(c.author_id)
            .bind(&c.body)
            .bind(c.created_at)
            .bind(c.updated_at)
            .bind(c.version)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn comment_by_id(
            &mut self,
            id: Uuid,
            lock: bool,
        ) -> StoreResult<Option<CommentInProject>> {
            const PLAIN: &str = concat!(
                "SELECT ", comment_columns!(), ", t.project_id FROM comments c \
                 JOIN tasks t ON t.id = c.task_id WHERE c.id = $1"
            );
            const LOCKED: &str = concat!(
                "SELECT ", comment_columns!(), ", t.project_id FROM comments c \
                 JOIN tasks t ON t.id = c.task_id WHERE c.id = $1 FOR UPDATE OF c"
            );
            let sql = if lock && !<DB as Dialect>::FOR_UPDATE.is_empty() { LOCKED } else { PLAIN };
            Ok(sqlx::query_as(sql).bind(id).fetch_optional(self.db()).await?)
        }

        async fn update_comment(&mut self, c: &CommentRecord) -> StoreResult<()> {
            sqlx::query("UPDATE comments SET body = $2, updated_at = $3, version = $4 WHERE id = $1")
                .bind(c.id)
                .bind(&c.body)
                .bind(c.updated_at)
                .bind(c.version)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn delete_comment(&mut self, id: Uuid) -> StoreResult<()> {
            sqlx::query("DELETE FROM comments WHERE id = $1").bind(id).execute(self.db()).await?;
            Ok(())
        }

        async fn list_comments(
            &mut self,
            task_id: Uuid,
            after: Option<&CommentKey>,
            limit: u32,
        ) -> StoreResult<Vec<CommentRecord>> {
            let mut query = sqlx::QueryBuilder::<DB>::new(concat!(
                "SELECT ", comment_columns!(), " FROM comments c WHERE c.task_id = "
            ));
            query.push_bind(task_id);
            if let Some(after) = after {
                query.push(" AND (c.created_at > ").push_bind(after.created_at);
                query.push(" OR (c.created_at = ").push_bind(after.created_at);
                query.push(" AND c.id > ").push_bind(after.id).push("))");
            }
            query.push(" ORDER BY c.created_at, c.id LIMIT ").push_bind(i64::from(limit));
            Ok(query.build_query_as().fetch_all(self.db()).await?)
        }

        async fn change_comment_count(&mut self, task_id: Uuid, delta: i32) -> StoreResult<()> {
            sqlx::query(
                "UPDATE tasks SET comment_count = comment_count + $2, version = version + 1 WHERE id = $1",
            )
            .bind(task_id)
            .bind(delta)
            .execute(self.db())
            .await?;
            Ok(())
        }
    }
}
