//! `/api/v1/projects/{project_id}/tasks` and `/api/v1/tasks/{task_id}`.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, OpenApi};
use uuid::Uuid;

use crate::auth::bearer::BearerAuth;
use crate::error::{AppError, AppResult};
use crate::etag;
use crate::http::body::JsonBody;
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::responses::{
    EntityTag, NoContent, PageEntry, RenderedByVersion, RenderedJson, ResourcePath,
};
use crate::http::tags::Tag;
use crate::idempotency::IdempotencyKey;
use crate::state::AppState;
use crate::tasks::model::{Priority, Task, TaskStatus, to_micros};
use crate::tasks::requests::{CreateTaskRequest, UpdateTaskRequest};
use crate::tasks::service::{self, ListRequest, ListedItem, NewTask, TaskChanges};
use crate::tasks::store::{KnownDocuments, Relation, SortColumn, TaskFilter};
use crate::validate::{FieldChecks, Text};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;

crate::error_set! {
    /// Errors of creating a task.
    CreateTaskErrors = [400, 401, 403, 404, 413, 415, 422];
    /// Errors of listing tasks.
    ListTasksErrors = [400, 401, 404];
    /// Errors of reading a task.
    ReadTaskErrors = [400, 401, 404];
    /// Errors of changing a task.
    WriteTaskErrors = [400, 401, 403, 404, 412, 413, 415];
    /// Errors of deleting a task (no body, so no 413 or 415).
    DeleteTaskErrors = [400, 401, 403, 404, 412];
}

crate::page_type!(
    /// A page of tasks.
    TaskPage,
    Task
);

/// The field a task list is sorted by.
#[derive(Debug, Clone, Copy, Default, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TaskSort {
    /// Creation time (the default).
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Due time; tasks without one come last in either order.
    DueAt,
    /// Priority (`low` < `medium` < `high` < `urgent`).
    Priority,
    /// How well the task matches `q` (required with this sort): best match first in the
    /// default `asc` order. Ranked by `ts_rank` on PostgreSQL and `bm25` on SQLite, title
    /// matches above description matches above comment matches.
    Relevance,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SortOrder {
    /// Ascending (the default).
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// How the tasks of "my tasks" relate to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TaskRelation {
    /// Assigned to me.
    Assigned,
    /// Created by me.
    Created,
    /// Assigned to me or created by me (the default).
    #[default]
    Any,
}

impl From<TaskSort> for SortColumn {
    fn from(sort: TaskSort) -> Self {
        match sort {
            TaskSort::CreatedAt => Self::CreatedAt,
            TaskSort::UpdatedAt => Self::UpdatedAt,
            TaskSort::DueAt => Self::DueAt,
            TaskSort::Priority => Self::Priority,
            TaskSort::Relevance => Self::Relevance,
        }
    }
}

/// A created task.
#[derive(ApiResponse)]
pub enum TaskCreated {
    /// Created. `Location` is the task's URL; `ETag` identifies this version.
    #[oai(status = 201)]
    Created(
        Json<Task>,
        #[oai(header = "Location")] ResourcePath,
        #[oai(header = "ETag")] EntityTag,
    ),
}

/// A task read.
#[derive(ApiResponse)]
pub enum TaskRead {
    /// The task; `ETag` identifies this version (send it as `If-Match` when changing it).
    #[oai(status = 200)]
    Ok(RenderedJson<Task>, #[oai(header = "ETag")] EntityTag),
    /// The task has not changed since the version in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] EntityTag),
}

/// A changed task.
#[derive(ApiResponse)]
pub enum TaskUpdated {
    /// The task after the change; `ETag` identifies the new version.
    #[oai(status = 200)]
    Ok(Json<Task>, #[oai(header = "ETag")] EntityTag),
}

impl KnownDocuments for RenderedByVersion<Task> {
    fn document(&self, id: Uuid, version: i32) -> Option<Bytes> {
        self.rendered(id, i64::from(version))
    }
}

/// The sort and page parameters of a task list.
struct PageQuery<'a> {
    sort: TaskSort,
    order: SortOrder,
    limit: u32,
    cursor: Option<&'a str>,
}

/// The answer of a task list's service function.
type ListAnswer<'f> =
    Pin<Box<dyn Future<Output = AppResult<(Vec<ListedItem>, Option<String>)>> + Send + 'f>>;

impl TasksApi {
    /// Runs a task list (`run` calls the service function with the request) and renders the
    /// page, reusing the documents of task versions already rendered.
    async fn page<'s>(
        &'s self,
        filter: TaskFilter,
        page: PageQuery<'s>,
        run: impl FnOnce(ListRequest<'s>) -> ListAnswer<'s>,
    ) -> Result<RenderedJson<TaskPage>, ApiError<ListTasksErrors>> {
        // `q` reaches the database's text-search functions: no control characters (PostgreSQL
        // refuses a NUL in text with an error).
        if let Some(text) = &filter.text {
            let errors = FieldChecks::default().text("q", text, 0, 200).finish();
            if !errors.is_empty() {
                return Err(AppError::Validation(errors).into());
            }
        }
        let request = ListRequest {
            known: &self.rendered,
            filter,
            sort: page.sort.into(),
            descending: page.order == SortOrder::Desc,
            cursor: page.cursor,
            limit: pagination::limit(Some(page.limit)),
        };
        let (items, next_cursor) = run(request).await?;
        let items = items.iter().map(|item| match item {
            ListedItem::Rendered(body) => PageEntry::Rendered(body.clone()),
            ListedItem::Task(task) => PageEntry::Value(task.id, i64::from(task.version), task),
        });
        Ok(self.rendered.page(items, next_cursor.as_deref()))
    }
}

/// Tasks.
pub struct TasksApi {
    /// Shared state.
    pub state: AppState,
    /// Task documents rendered once per version, for reads.
    pub rendered: RenderedByVersion<Task>,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Tasks")]
impl TasksApi {
    /// Create a task
    ///
    /// Creates a task in a project. Owners and members only; viewers get 403.
    #[oai(
        path = "/projects/:project_id/tasks",
        method = "post",
        operation_id = "createTask"
    )]
    async fn create(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// Makes retries safe: a repeat with this key replays the first answer (24 hours);
        /// the same key with a different request is a 422.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<CreateTaskRequest>,
    ) -> Result<TaskCreated, ApiError<CreateTaskErrors>> {
        let key = IdempotencyKey::from_request(
            auth.0.user_id,
            idempotency_key.0.as_deref(),
            "createTask",
            &project_id.0.to_string(),
            body.raw(),
        )?;
        let body = body.0;
        let new = NewTask {
            title: body.title.0.trim().to_owned(),
            description: body.description.map(Text::into_inner).unwrap_or_default(),
            status: body.status.unwrap_or(TaskStatus::Todo),
            priority: body.priority.unwrap_or(Priority::Medium),
            assignee_id: body.assignee_id,
            due_at: body.due_at.map(to_micros),
            tags: body.tags.unwrap_or_default().0,
        };
        let task =
            service::create(&self.state.domain, &auth.0, project_id.0, new, key.as_ref()).await?;
        let location = format!("/api/v1/tasks/{}", task.id);
        let tag = etag::for_version(task.version);
        Ok(TaskCreated::Created(
            Json(task),
            ResourcePath(location),
            EntityTag(tag),
        ))
    }

    /// List tasks
    ///
    /// A project's tasks, filtered and sorted, one page at a time. Any member may list.
    /// Times in the query must be URL-encoded (`+` as `%2B`).
    #[oai(
        path = "/projects/:project_id/tasks",
        method = "get",
        operation_id = "listTasks"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// Only tasks with this status.
        status: Query<Option<TaskStatus>>,
        /// Only tasks with this priority.
        priority: Query<Option<Priority>>,
        /// Only tasks assigned to this user.
        assignee_id: Query<Option<Uuid>>,
        /// Only tasks with this tag.
        #[oai(validator(min_length = 1, max_length = 40))]
        tag: Query<Option<String>>,
        /// Only tasks due strictly before this time.
        due_before: Query<Option<DateTime<Utc>>>,
        /// Only tasks due strictly after this time.
        due_after: Query<Option<DateTime<Utc>>>,
        /// Full-text search: only tasks whose title, description or comments contain every
        /// word of this text (words are runs of letters and digits; case and English word
        /// endings do not matter; stop words such as `the` are ignored, so a text of stop words
        /// only finds nothing). Quotes, `*`, `-` and `or` are not operators.
        #[oai(validator(min_length = 1, max_length = 200))]
        q: Query<Option<String>>,
        /// Sort field (default `created_at`).
        #[oai(default)]
        sort: Query<TaskSort>,
        /// Sort direction (default `asc`).
        #[oai(default)]
        order: Query<SortOrder>,
        /// Items per page (1 to 100, default 20).
        #[oai(
            default = "crate::http::pagination::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` from the previous page (with the same filters and sort).
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<RenderedJson<TaskPage>, ApiError<ListTasksErrors>> {
        let filter = TaskFilter {
            status: status.0,
            priority: priority.0,
            assignee_id: assignee_id.0,
            tag: tag.0,
            due_before: due_before.0,
            due_after: due_after.0,
            text: q.0,
        };
        let page = PageQuery {
            sort: sort.0,
            order: order.0,
            limit: limit.0,
            cursor: cursor.0.as_deref(),
        };
        self.page(filter, page, |request| {
            // Boxed: the service's future is large, and poem's layers would move it several times.
            Box::pin(service::list(
                &self.state.domain,
                &auth.0,
                project_id.0,
                request,
            ))
        })
        .await
    }

    /// List my tasks
    ///
    /// Tasks assigned to me or created by me (`relation`), across every project I am a member
    /// of now, with the filters, sort orders and cursor pagination of the project task list.
    /// Tasks of a project I have left or was removed from are not listed.
    /// Times in the query must be URL-encoded (`+` as `%2B`).
    #[oai(path = "/tasks", method = "get", operation_id = "listMyTasks")]
    #[allow(clippy::too_many_arguments)]
    async fn list_mine(
        &self,
        auth: BearerAuth,
        /// Which of my tasks: assigned to me, created by me, or either (default `any`).
        #[oai(default)]
        relation: Query<TaskRelation>,
        /// Only tasks with this status.
        status: Query<Option<TaskStatus>>,
        /// Only tasks with this priority.
        priority: Query<Option<Priority>>,
        /// Only tasks with this tag.
        #[oai(validator(min_length = 1, max_length = 40))]
        tag: Query<Option<String>>,
        /// Only tasks due strictly before this time.
        due_before: Query<Option<DateTime<Utc>>>,
        /// Only tasks due strictly after this time.
        due_after: Query<Option<DateTime<Utc>>>,
        /// Full-text search: only tasks whose title, description or comments contain every
        /// word of this text (words are runs of letters and digits; case and English word
        /// endings do not matter; stop words such as `the` are ignored, so a text of stop words
        /// only finds nothing). Quotes, `*`, `-` and `or` are not operators.
        #[oai(validator(min_length = 1, max_length = 200))]
        q: Query<Option<String>>,
        /// Sort field (default `created_at`).
        #[oai(default)]
        sort: Query<TaskSort>,
        /// Sort direction (default `asc`).
        #[oai(default)]
        order: Query<SortOrder>,
        /// Items per page (1 to 100, default 20).
        #[oai(
            default = "crate::http::pagination::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` from the previous page (with the same filters and sort).
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<RenderedJson<TaskPage>, ApiError<ListTasksErrors>> {
        let filter = TaskFilter {
            status: status.0,
            priority: priority.0,
            assignee_id: None,
            tag: tag.0,
            due_before: due_before.0,
            due_after: due_after.0,
            text: q.0,
        };
        let relation = match relation.0 {
            TaskRelation::Assigned => Relation::Assigned,
            TaskRelation::Created => Relation::Created,
            TaskRelation::Any => Relation::Any,
        };
        let page = PageQuery {
            sort: sort.0,
            order: order.0,
            limit: limit.0,
            cursor: cursor.0.as_deref(),
        };
        self.page(filter, page, |request| {
            Box::pin(service::list_mine(
                &self.state.domain,
                &auth.0,
                relation,
                request,
            ))
        })
        .await
    }

    /// Get a task
    ///
    /// Any member of the task's project may read it. The `ETag` header identifies the version;
    /// with a matching `If-None-Match` the answer is 304 without a body.
    #[oai(path = "/tasks/:task_id", method = "get", operation_id = "getTask")]
    async fn get(
        &self,
        auth: BearerAuth,
        /// The task.
        task_id: Path<Uuid>,
        /// ETags the client already has.
        #[oai(name = "If-None-Match", validator(max_length = 1024))]
        if_none_match: Header<Option<String>>,
    ) -> Result<TaskRead, ApiError<ReadTaskErrors>> {
        let task = service::get(&self.state.domain, &auth.0, task_id.0).await?;
        let tag = etag::for_version(task.version);
        match if_none_match.0 {
            Some(header) if etag::if_none_match(&header, &tag) => {
                Ok(TaskRead::NotModified(EntityTag(tag)))
            }
            _ => {
                let body = self.rendered.get(task.id, i64::from(task.version), &task);
                Ok(TaskRead::Ok(body, EntityTag(tag)))
            }
        }
    }

    /// Update a task
    ///
    /// Changes the given fields. Owners and members only. Send the `ETag` you read as
    /// `If-Match` to refuse the change (412) if someone else changed the task since.
    #[oai(
        path = "/tasks/:task_id",
        method = "patch",
        operation_id = "updateTask"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        /// The task.
        task_id: Path<Uuid>,
        /// The ETag the change is based on.
        #[oai(name = "If-Match", validator(max_length = 1024))]
        if_match: Header<Option<String>>,
        body: JsonBody<UpdateTaskRequest>,
    ) -> Result<TaskUpdated, ApiError<WriteTaskErrors>> {
        let body = body.0;
        let changes = TaskChanges {
            title: body.title.map(|t| t.0.trim().to_owned()),
            description: body.description.map(Text::into_inner),
            status: body.status,
            priority: body.priority,
            assignee_id: body.assignee_id,
            due_at: body.due_at.map_value(to_micros),
            tags: body.tags.map(|t| t.0),
        };
        let task = service::update(
            &self.state.domain,
            &auth.0,
            task_id.0,
            if_match.0.as_deref(),
            changes,
        )
        .await?;
        let tag = etag::for_version(task.version);
        Ok(TaskUpdated::Ok(Json(task), EntityTag(tag)))
    }

    /// Delete a task
    ///
    /// Deletes a task. Owners and members only. With `If-Match`, a stale version gets 412.
    #[oai(
        path = "/tasks/:task_id",
        method = "delete",
        operation_id = "deleteTask"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        /// The task.
        task_id: Path<Uuid>,
        /// The ETag the deletion is based on.
        #[oai(name = "If-Match", validator(max_length = 1024))]
        if_match: Header<Option<String>>,
    ) -> Result<NoContent, ApiError<DeleteTaskErrors>> {
        service::delete(
            &self.state.domain,
            &auth.0,
            task_id.0,
            if_match.0.as_deref(),
        )
        .await?;
        Ok(NoContent::NoContent)
    }
}
