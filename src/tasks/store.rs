//! Task storage, including the keyset query behind the filtered, sorted task list.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{Connection, StoreResult, TextList};
use crate::tasks::model::{Priority, TaskStatus, to_micros};

/// A stored task (its tags live in `task_tags`, and sorted in the `tags` column that triggers
/// derive from it).
#[derive(Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// The project it belongs to.
    pub project_id: Uuid,
    /// One line, 1 to 200 characters.
    pub title: String,
    /// Up to 10000 characters; empty when none was given.
    pub description: String,
    /// `todo`, `in_progress` or `done`.
    pub status: String,
    /// 1 (low) to 4 (urgent).
    pub priority: i32,
    /// A member of the project, or `None` when unassigned.
    pub assignee_id: Option<Uuid>,
    /// In UTC at microsecond precision; `None` when never due.
    pub due_at: Option<DateTime<Utc>>,
    /// The user who created it.
    pub created_by: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// 1 on creation, one more on every change (the ETag is `"v<version>"`), including the
    /// addition or deletion of a comment.
    pub version: i32,
    /// How many comments it has (0 in cache entries written before comments existed).
    #[serde(default)]
    pub comment_count: i32,
}

/// A task with its tags, read in the same statement.
pub struct ListedTask {
    /// The task.
    pub task: TaskRecord,
    /// Its tags, sorted.
    pub tags: TextList,
    /// Its relevance score in a list sorted by [`SortColumn::Relevance`] (lower is a better
    /// match); 0 otherwise.
    pub score: f64,
}

impl ListedTask {
    /// The row's key in a list sorted by `sort`.
    pub fn key(&self, sort: SortColumn, descending: bool) -> SortKey {
        match sort {
            SortColumn::Relevance => SortKey {
                value: SortValue::Score(self.score),
                id: self.task.id,
            },
            _ => sort.key_of(&self.task, descending),
        }
    }
}

/// A row of a task list page.
pub enum ListedRow {
    /// The caller already had this version's document ([`TaskQuery::known`] gave it): only the
    /// id, the version and the sort column were decoded.
    Known {
        /// The document [`TaskQuery::known`] returned.
        document: Bytes,
        /// The row's sort key.
        key: SortKey,
    },
    /// The task in full.
    Full(ListedTask),
}

// Rows are decoded by position, in the order of `task_columns!` (then `tags`), without sqlx's
// type-compatibility check: the columns are ours and their types fixed by the migrations (a
// wrong type still fails to decode, as an error). By name and checked, a 20-row page spent
// 150,000 instructions in decoding, about a third of the request.
impl<'r, R> sqlx::FromRow<'r, R> for TaskRecord
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Uuid: sqlx::Decode<'r, R::Database>,
    Option<Uuid>: sqlx::Decode<'r, R::Database>,
    String: sqlx::Decode<'r, R::Database>,
    i32: sqlx::Decode<'r, R::Database>,
    DateTime<Utc>: sqlx::Decode<'r, R::Database>,
    Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get_unchecked(0)?,
            project_id: row.try_get_unchecked(1)?,
            title: row.try_get_unchecked(2)?,
            description: row.try_get_unchecked(3)?,
            status: row.try_get_unchecked(4)?,
            priority: row.try_get_unchecked(5)?,
            assignee_id: row.try_get_unchecked(6)?,
            due_at: row.try_get_unchecked(7)?,
            created_by: row.try_get_unchecked(8)?,
            created_at: row.try_get_unchecked(9)?,
            updated_at: row.try_get_unchecked(10)?,
            version: row.try_get_unchecked(11)?,
            comment_count: row.try_get_unchecked(12)?,
        })
    }
}

impl<'r, R> sqlx::FromRow<'r, R> for ListedTask
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    TaskRecord: sqlx::FromRow<'r, R>,
    TextList: sqlx::Decode<'r, R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            task: TaskRecord::from_row(row)?,
            tags: row.try_get_unchecked(13)?,
            score: 0.0,
        })
    }
}

/// Filters of the task list (all optional, combined with AND; `None` does not filter).
#[derive(Default, Serialize)]
pub struct TaskFilter {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks with this priority.
    pub priority: Option<Priority>,
    /// Only tasks assigned to this user.
    pub assignee_id: Option<Uuid>,
    /// Only tasks with this tag.
    pub tag: Option<String>,
    /// Only tasks due strictly before this time (compared at microsecond precision).
    pub due_before: Option<DateTime<Utc>>,
    /// Only tasks due strictly after this time (compared at microsecond precision).
    pub due_after: Option<DateTime<Utc>>,
    /// Only tasks whose title, description or comments contain every word of this text
    /// (full-text search: stemmed, stop words ignored; see `db::fulltext`).
    pub text: Option<String>,
}

/// The column a task list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SortColumn {
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `due_at`, tasks without a due time last.
    DueAt,
    /// Priority rank.
    Priority,
    /// How well a task matches [`TaskFilter::text`] (only with a text): best match first when
    /// ascending. The score is `-ts_rank` on PostgreSQL and `bm25` on SQLite, lower is better.
    Relevance,
}

/// A row's position in a sorted list: its sort value and id (the tie-breaker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortKey {
    /// The row's value in the sort column.
    pub value: SortValue,
    /// The row's id, which orders rows with equal values.
    pub id: Uuid,
}

/// A sort value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    /// Priority rank.
    Rank(i32),
    /// A time (for `due_at`, absent values sort as [`SortColumn::null_due`]).
    Time(DateTime<Utc>),
    /// A relevance score, kept in the cursor as the shortest decimal that reads back as the
    /// same `f64` (Rust's own formatting and parsing; serde_json's float parsing may be off by
    /// one unit in the last place, which would repeat or skip a row at a page boundary).
    Score(#[serde(with = "score_text")] f64),
}

/// A score as text that parses back exactly.
mod score_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(score: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("s{score:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.strip_prefix('s')
            .and_then(|number| number.parse::<f64>().ok())
            .filter(|score| score.is_finite())
            .ok_or_else(|| serde::de::Error::custom("not a score"))
    }
}

impl SortColumn {
    /// The stand-in for a missing due time, chosen so such tasks come last either way.
    pub fn null_due(descending: bool) -> DateTime<Utc> {
        let text = if descending {
            "0001-01-01T00:00:00Z"
        } else {
            "9999-12-31T23:59:59Z"
        };
        text.parse().expect("valid constant")
    }

    /// The key of `task` in a list sorted by this column.
    pub fn key_of(self, task: &TaskRecord, descending: bool) -> SortKey {
        let value = match self {
            Self::CreatedAt => SortValue::Time(task.created_at),
            Self::UpdatedAt => SortValue::Time(task.updated_at),
            Self::DueAt => {
                SortValue::Time(task.due_at.unwrap_or_else(|| Self::null_due(descending)))
            }
            Self::Priority => SortValue::Rank(task.priority),
            // The score is not part of the task: [`ListedTask::key`] has it.
            Self::Relevance => SortValue::Score(0.0),
        };
        SortKey { value, id: task.id }
    }
}

/// The documents of task versions a caller already has rendered.
pub trait KnownDocuments: Send + Sync {
    /// The document of version `version` of task `id`, if the caller has it.
    fn document(&self, id: Uuid, version: i32) -> Option<Bytes>;
}

/// A caller that has no documents.
impl KnownDocuments for () {
    fn document(&self, _: Uuid, _: i32) -> Option<Bytes> {
        None
    }
}

/// Which tasks a list is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaskScope {
    /// One project's tasks.
    Project(Uuid),
    /// "My tasks": tasks related to a user (see [`Relation`]) in every project the user is a
    /// member of now. Membership is read in the same statement, so a project the user was
    /// removed from drops out at once, on every instance.
    Mine {
        /// The user.
        user_id: Uuid,
        /// How the tasks relate to the user.
        relation: Relation,
    },
}

/// How a task relates to a user, for "my tasks".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Relation {
    /// Assigned to the user.
    Assigned,
    /// Created by the user.
    Created,
    /// Either.
    Any,
}

/// A list query: filters, sort, and where the previous page ended.
pub struct TaskQuery<'a> {
    /// The document of a task version the caller already has, if it has it: such rows are not
    /// decoded in full (at 20 rows a page, decoding was a fifth of a list request's work).
    pub known: &'a dyn KnownDocuments,
    /// The tasks the list is drawn from.
    pub scope: TaskScope,
    /// Which of them.
    pub filter: &'a TaskFilter,
    /// The column the rows are ordered by (then by id).
    pub sort: SortColumn,
    /// Largest first.
    pub descending: bool,
    /// Key of the last row of the previous page; `None` for the first page.
    pub after: Option<SortKey>,
    /// Rows to fetch (a page and one more, to learn whether another page follows).
    pub limit: u32,
}

/// Storage of tasks and their tags.
#[async_trait]
pub trait TaskStore: Send {
    /// Inserts a task.
    async fn insert_task(&mut self, task: &TaskRecord) -> StoreResult<()>;
    /// A task by id; in a PostgreSQL transaction with `lock`, the row is locked until commit.
    async fn task_by_id(&mut self, id: Uuid, lock: bool) -> StoreResult<Option<TaskRecord>>;
    /// Writes every mutable field of a task.
    async fn update_task(&mut self, task: &TaskRecord) -> StoreResult<()>;
    /// Deletes a task.
    async fn delete_task(&mut self, id: Uuid) -> StoreResult<()>;
    /// Replaces a task's tags.
    async fn replace_tags(&mut self, task_id: Uuid, tags: &[String]) -> StoreResult<()>;
    /// A task's tags, sorted (empty when the task does not exist).
    async fn tags_of(&mut self, task_id: Uuid) -> StoreResult<Vec<String>>;
    /// A task by id with its tags, in one statement.
    async fn task_with_tags(&mut self, id: Uuid) -> StoreResult<Option<ListedTask>>;
    /// One page of a project's (or a user's) tasks, each with its tags, in one statement.
    async fn list_tasks(&mut self, query: &TaskQuery<'_>) -> StoreResult<Vec<ListedRow>>;
    /// How many tasks a project has.
    async fn count_tasks(&mut self, project_id: Uuid) -> StoreResult<i64>;
    /// Unassigns a user's tasks in a project (when they leave it), bumping their versions;
    /// returns the ids of the tasks changed.
    async fn unassign_member_tasks(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Vec<Uuid>>;
}

/// The columns of [`TaskRecord`], in the order its `FromRow` reads them.
macro_rules! task_columns {
    () => {
        "id, project_id, title, description, status, priority, assignee_id, due_at, created_by, \
         created_at, updated_at, version, comment_count"
    };
}

crate::for_each_backend! {
    use crate::db::{Backend, Dialect, fulltext};

    fn bind_sort_value(query: &mut sqlx::QueryBuilder<DB>, value: &SortValue) {
        match value {
            SortValue::Rank(rank) => query.push_bind(*rank),
            SortValue::Time(time) => query.push_bind(*time),
            SortValue::Score(score) => query.push_bind(*score),
        };
    }

    /// A task-list text query in this dialect's form: on PostgreSQL the words for
    /// `websearch_to_tsquery('english', ...)`, on SQLite an FTS5 MATCH expression of quoted
    /// words. Both are built from `db::fulltext::search_words`, so both databases look for the
    /// same words and no input can be read as query syntax.
    struct SearchText(String);

    impl SearchText {
        fn new<D: Dialect>(text: &str) -> Option<Self> {
            match D::BACKEND {
                Backend::Postgres => {
                    let words = fulltext::search_words(text);
                    (!words.is_empty()).then(|| Self(words.join(" ")))
                }
                Backend::Sqlite => fulltext::fts5_match(text).map(Self),
            }
        }
    }

    /// ` AND <the task matches the search>`: the GIN-indexed `search` column on PostgreSQL, the
    /// FTS5 table (mapped to task ids by `task_search_rows`) on SQLite.
    fn push_search(query: &mut sqlx::QueryBuilder<DB>, search: &SearchText) {
        match <DB as Dialect>::BACKEND {
            Backend::Postgres => {
                query.push(" AND search @@ websearch_to_tsquery('english', ");
                query.push_bind(search.0.clone()).push(")");
            }
            Backend::Sqlite => {
                query.push(
                    " AND tasks.id IN (SELECT r.task_id FROM task_fts JOIN task_search_rows r \
                     ON r.fts_id = task_fts.rowid WHERE task_fts MATCH ",
                );
                query.push_bind(search.0.clone()).push(")");
            }
        }
    }

    /// A task's relevance score, lower is better: `-ts_rank` (weights: title A, description B,
    /// comments C) on PostgreSQL, `bm25` with the weights 5, 2 and 1 on SQLite; 0 without a
    /// search.
    fn push_score(query: &mut sqlx::QueryBuilder<DB>, search: Option<&SearchText>) {
        let Some(search) = search else {
            query.push("CAST(0 AS double precision)");
            return;
        };
        match <DB as Dialect>::BACKEND {
            Backend::Postgres => {
                query.push("CAST(-ts_rank(search, websearch_to_tsquery('english', ");
                query.push_bind(search.0.clone()).push(")) AS double precision)");
            }
            Backend::Sqlite => {
                query.push(
                    "(SELECT bm25(task_fts, 5.0, 2.0, 1.0) FROM task_fts WHERE task_fts MATCH ",
                );
                query.push_bind(search.0.clone());
                query.push(
                    " AND task_fts.rowid = (SELECT fts_id FROM task_search_rows \
                     WHERE task_id = tasks.id))",
                );
            }
        }
    }

    #[async_trait]
    impl TaskStore for Connection<DB> {
        async fn insert_task(&mut self, t: &TaskRecord) -> StoreResult<()> {
            const SQL: &str = concat!(
                "INSERT INTO tasks (", task_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            );
            sqlx::query(SQL)
                .bind(t.id)
                .bind(t.project_id)
                .bind(&t.title)
                .bind(&t.description)
                .bind(&t.status)
                .bind(t.priority)
                .bind(t.assignee_id)
                .bind(t.due_at)
                .bind(t.created_by)
                .bind(t.created_at)
                .bind(t.updated_at)
                .bind(t.version)
                .bind(t.comment_count)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn task_by_id(&mut self, id: Uuid, lock: bool) -> StoreResult<Option<TaskRecord>> {
            const PLAIN: &str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1");
            const LOCKED: &str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1 FOR UPDATE");
            let sql = if lock && !<DB as Dialect>::FOR_UPDATE.is_empty() { LOCKED } else { PLAIN };
            Ok(sqlx::query_as(sql).bind(id).fetch_optional(self.db()).await?)
        }

        async fn update_task(&mut self, t: &TaskRecord) -> StoreResult<()> {
            sqlx::query(
                "UPDATE tasks SET title = $2, description = $3, status = $4, priority = $5, assignee_id = $6, \
                 due_at = $7, updated_at = $8, version = $9 WHERE id = $1",
            )
            .bind(t.id)
            .bind(&t.title)
            .bind(&t.description)
            .bind(&t.status)
            .bind(t.priority)
            .bind(t.assignee_id)
            .bind(t.due_at)
            .bind(t.updated_at)
            .bind(t.version)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn delete_task(&mut self, id: Uuid) -> StoreResult<()> {
            sqlx::query("DELETE FROM tasks WHERE id = $1").bind(id).execute(self.db()).await?;
            Ok(())
        }

        async fn replace_tags(&mut self, task_id: Uuid, tags: &[String]) -> StoreResult<()> {
            sqlx::query("DELETE FROM task_tags WHERE task_id = $1").bind(task_id).execute(self.db()).await?;
            if tags.is_empty() {
                return Ok(());
            }
            let mut query = sqlx::QueryBuilder::<DB>::new("INSERT INTO task_tags (task_id, tag) ");
            query.push_values(tags, |mut row, tag| {
                row.push_bind(task_id).push_bind(tag.clone());
            });
            query.build().execute(self.db()).await?;
            Ok(())
        }

        async fn tags_of(&mut self, task_id: Uuid) -> StoreResult<Vec<String>> {
            let tags: Option<(TextList,)> = sqlx::query_as("SELECT tags FROM tasks WHERE id = $1")
                .bind(task_id)
                .fetch_optional(self.db())
                .await?;
            Ok(tags.map(|(tags,)| tags.0).unwrap_or_default())
        }

        async fn task_with_tags(&mut self, id: Uuid) -> StoreResult<Option<ListedTask>> {
            const SQL: &str = concat!("SELECT ", task_columns!(), ", tags FROM tasks WHERE id = $1");
            Ok(sqlx::query_as(SQL).bind(id).fetch_optional(self.db()).await?)
        }

        async fn list_tasks(&mut self, q: &TaskQuery<'_>) -> StoreResult<Vec<ListedRow>> {
            // The tags come from the row's own `tags` column (kept by triggers): a second
            // statement would cost a round trip a page, and a subquery per row was 40% of the
            // database's time per page.
            // Full-text search: the words to look for, in each dialect's form (see
            // `push_search` and `push_score`). A text without words finds nothing.
            let search = match &q.filter.text {
                Some(text) => match SearchText::new::<DB>(text) {
                    Some(search) => Some(search),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let ranked = q.sort == SortColumn::Relevance;
            let mut query = sqlx::QueryBuilder::<DB>::new(concat!("SELECT ", task_columns!(), ", tags"));
            if ranked {
                query.push(", ");
                push_score(&mut query, search.as_ref());
            }
            query.push(" FROM tasks WHERE ");
            match q.scope {
                TaskScope::Project(project_id) => {
                    query.push("project_id = ").push_bind(project_id);
                }
                TaskScope::Mine { user_id, relation } => {
                    query.push("project_id IN (SELECT m.project_id FROM project_members m WHERE m.user_id = ");
                    query.push_bind(user_id).push(") AND ");
                    match relation {
                        Relation::Assigned => { query.push("assignee_id = ").push_bind(user_id); }
                        Relation::Created => { query.push("created_by = ").push_bind(user_id); }
                        Relation::Any => {
                            query.push("(assignee_id = ").push_bind(user_id);
                            query.push(" OR created_by = ").push_bind(user_id).push(")");
                        }
                    }
                }
            }
            let f = q.filter;
            if let Some(status) = f.status {
                query.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(priority) = f.priority {
                query.push(" AND priority = ").push_bind(priority.rank());
            }
            if let Some(assignee) = f.assignee_id {
                query.push(" AND assignee_id = ").push_bind(assignee);
            }
            if let Some(tag) = &f.tag {
                query.push(" AND EXISTS (SELECT 1 FROM task_tags g WHERE g.task_id = tasks.id AND g.tag = ");
                query.push_bind(tag.clone()).push(")");
            }
            if let Some(before) = f.due_before {
                query.push(" AND due_at < ").push_bind(to_micros(before));
            }
            if let Some(after) = f.due_after {
                query.push(" AND due_at > ").push_bind(to_micros(after));
            }
            if let Some(search) = &search {
                push_search(&mut query, search);
            }
            // The sort expression; a missing due time sorts last in either direction.
            let null_due = SortColumn::null_due(q.descending);
            let push_sort_expr = |query: &mut sqlx::QueryBuilder<DB>| {
                match q.sort {
                    SortColumn::CreatedAt => { query.push("created_at"); }
                    SortColumn::UpdatedAt => { query.push("updated_at"); }
                    SortColumn::Priority => { query.push("priority"); }
                    SortColumn::DueAt => { query.push("COALESCE(due_at, ").push_bind(null_due).push(")"); }
                    SortColumn::Relevance => push_score(query, search.as_ref()),
                }
            };
            let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
            if let Some(after) = &q.after {
                query.push(" AND (");
                push_sort_expr(&mut query);
                query.push(format!(" {cmp} "));
                bind_sort_value(&mut query, &after.value);
                query.push(" OR (");
                push_sort_expr(&mut query);
                query.push(" = ");
                bind_sort_value(&mut query, &after.value);
                query.push(format!(" AND id {cmp} ")).push_bind(after.id).push("))");
            }
            query.push(" ORDER BY ");
            push_sort_expr(&mut query);
            query.push(format!(" {dir}, id {dir} LIMIT ")).push_bind(i64::from(q.limit));
            let rows = query.build().fetch_all(self.db()).await?;
            let mut listed = Vec::with_capacity(rows.len());
            for row in &rows {
                use sqlx::{FromRow, Row};
                let (id, version) = (row.try_get_unchecked(0)?, row.try_get_unchecked(11)?);
                listed.push(match q.known.document(id, version) {
                    Some(document) => {
                        let value = match q.sort {
                            SortColumn::CreatedAt => SortValue::Time(row.try_get_unchecked(9)?),
                            SortColumn::UpdatedAt => SortValue::Time(row.try_get_unchecked(10)?),
                            SortColumn::DueAt => SortValue::Time(
                                row.try_get_unchecked::<Option<_>, _>(7)?.unwrap_or(null_due),
                            ),
                            SortColumn::Priority => SortValue::Rank(row.try_get_unchecked(5)?),
                            SortColumn::Relevance => SortValue::Score(row.try_get_unchecked(14)?),
                        };
                        ListedRow::Known { document, key: SortKey { value, id } }
                    }
                    None => {
                        let mut task = ListedTask::from_row(row)?;
                        if ranked {
                            task.score = row.try_get_unchecked(14)?;
                        }
                        ListedRow::Full(task)
                    }
                });
            }
            Ok(listed)
        }

        async fn count_tasks(&mut self, project_id: Uuid) -> StoreResult<i64> {
            let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tasks WHERE project_id = $1")
                .bind(project_id)
                .fetch_one(self.db())
                .await?;
            Ok(count)
        }

        async fn unassign_member_tasks(
            &mut self,
            project_id: Uuid,
            user_id: Uuid,
        ) -> StoreResult<Vec<Uuid>> {
            let ids: Vec<(Uuid,)> = sqlx::query_as(
                "UPDATE tasks SET assignee_id = NULL, version = version + 1, updated_at = $3 \
                 WHERE project_id = $1 AND assignee_id = $2 RETURNING id",
            )
                .bind(project_id)
                .bind(user_id)
                .bind(crate::db::now())
                .fetch_all(self.db())
                .await?;
            Ok(ids.into_iter().map(|(id,)| id).collect())
        }
    }
}
