//! Task rules: members and owners write, viewers read, outsiders see nothing (404); assignees
//! must be members; `If-Match` guards writes against lost updates.

use poem_openapi::types::MaybeUndefined;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::activity::model::{FieldChange, TaskActivity, TaskField};
use crate::audit::model::{Change, resource};
use crate::auth::Principal;
use crate::cache::keys;
use crate::domain::{DomainContext, UnitOfWork};
use crate::error::{AppError, AppResult};
use crate::etag;
use crate::idempotency::{self, Begun, IdempotencyKey};
use crate::paging::Paging;
use crate::projects::model::ProjectRole;
use crate::projects::service::cached_role;
use crate::projects::store::ProjectStore;
use crate::tasks::model::{Priority, Task, TaskStatus};
use crate::tasks::store::{
    KnownDocuments, ListedRow, Relation, SortColumn, SortKey, TaskFilter, TaskQuery, TaskRecord,
    TaskScope, TaskStore,
};
use bytes::Bytes;

/// A new task (already validated).
pub struct NewTask {
    /// Trimmed, one line.
    pub title: String,
    /// Empty when none was given.
    pub description: String,
    /// Where it starts.
    pub status: TaskStatus,
    /// How urgent it is.
    pub priority: Priority,
    /// Must be a member of the project; `None`: unassigned.
    pub assignee_id: Option<Uuid>,
    /// At microsecond precision; `None`: never due.
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Stored sorted.
    pub tags: Vec<String>,
}

/// Changes to a task (already validated); `None` and `Undefined` leave a field alone, `Null`
/// clears it. Only the fields a client may change are here: id, project, creator, times and
/// version belong to the server.
#[derive(Default)]
pub struct TaskChanges {
    /// Trimmed, one line.
    pub title: Option<String>,
    /// Replaces the whole description.
    pub description: Option<String>,
    /// The new status.
    pub status: Option<TaskStatus>,
    /// The new priority.
    pub priority: Option<Priority>,
    /// A member of the project, or `Null` to unassign.
    pub assignee_id: MaybeUndefined<Uuid>,
    /// At microsecond precision, or `Null` to clear.
    pub due_at: MaybeUndefined<chrono::DateTime<chrono::Utc>>,
    /// Replaces the whole tag list.
    pub tags: Option<Vec<String>>,
}

/// Refuses (403) viewers: only owners and members change tasks.
fn require_writer(role: ProjectRole) -> AppResult<()> {
    if role.can_write_tasks() {
        Ok(())
    } else {
        Err(AppError::Forbidden("viewers cannot change tasks"))
    }
}

/// Refuses (400 naming `assignee_id`) an assignee who is not a member of the project.
async fn check_assignee(
    store: &mut dyn ProjectStore,
    project_id: Uuid,
    assignee: Uuid,
) -> AppResult<()> {
    match store.member_role(project_id, assignee).await? {
        Some(_) => Ok(()),
        None => Err(AppError::field(
            "assignee_id",
            "must be a member of the project",
        )),
    }
}

/// Creates a task in a project (owners and members).
pub async fn create(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    new: NewTask,
    key: Option<&IdempotencyKey>,
) -> AppResult<Task> {
    let mut work = match idempotency::begin(ctx, principal.user_id, key).await? {
        Begun::Replay(original) => return Ok(original),
        Begun::Fresh(work) => work,
    };
    require_writer(cached_role(ctx, project_id, principal.user_id, Some(&mut *work)).await?)?;
    if let Some(assignee) = new.assignee_id {
        check_assignee(&mut *work, project_id, assignee).await?;
    }
    let now = crate::db::now();
    let task = TaskRecord {
        id: Uuid::now_v7(),
        project_id,
        title: new.title,
        description: new.description,
        status: new.status.as_str().to_owned(),
        priority: new.priority.rank(),
        assignee_id: new.assignee_id,
        due_at: new.due_at,
        created_by: principal.user_id,
        created_at: now,
        updated_at: now,
        version: 1,
        comment_count: 0,
    };
    let mut tags = new.tags;
    tags.sort();
    work.insert_task(&task).await?;
    work.replace_tags(task.id, &tags).await?;
    let summary = json!({
        "title": task.title, "status": task.status, "priority": new.priority,
        "assignee_id": task.assignee_id, "due_at": task.due_at, "tags": tags,
    });
    work.record_activity(task.id, TaskActivity::Created(summary.clone()))
        .await?;
    let created = Task::new(task, tags);
    work.record(Change {
        action: "task.created",
        entity_type: "task",
        entity_id: created.id,
        project_id: Some(project_id),
        summary,
        resource: resource(&created),
    })
    .await?;
    let committed = idempotency::commit(work, key, created).await?;
    if committed.created {
        ctx.metrics.tasks.created.increment(1);
    }
    Ok(committed.answer)
}

/// Loads a task the caller may see, locked for the rest of the write, and the caller's role;
/// 404 when the task does not exist or the caller is not a member of its project.
async fn visible_for_write(
    work: &mut UnitOfWork<'_>,
    principal: &Principal,
    id: Uuid,
) -> AppResult<(TaskRecord, ProjectRole)> {
    let task = work
        .task_by_id(id, true)
        .await?
        .ok_or(AppError::NotFound("task"))?;
    let ctx = work.context();
    let role = cached_role(ctx, task.project_id, principal.user_id, Some(&mut **work))
        .await
        .map_err(|_| AppError::NotFound("task"))?;
    Ok((task, role))
}

/// A task the caller may see.
/// From the cache (`task:<id>`, with its tags, and the caller's role): a read the cache answers
/// does not touch the database. Every change to the task invalidates it on every instance.
pub async fn get(ctx: &DomainContext, principal: &Principal, id: Uuid) -> AppResult<Task> {
    let cached: Option<(TaskRecord, Vec<String>)> = ctx
        .cache
        .get_or_load("task", keys::task(id), || async {
            let mut store = ctx.read().await?;
            let found = store.task_with_tags(id).await?;
            Ok(found.map(|row| (row.task, row.tags.0)))
        })
        .await?;
    let (task, tags) = cached.ok_or(AppError::NotFound("task"))?;
    cached_role(ctx, task.project_id, principal.user_id, None)
        .await
        .map_err(|_| AppError::NotFound("task"))?;
    Ok(Task::new(task, tags))
}

/// Changes a task (owners and members). With `If-Match`, a stale version gets 412; the row is
/// locked while it is compared and written, so of concurrent writers with one ETag exactly one
/// wins.
pub async fn update(
    ctx: &DomainContext,
    principal: &Principal,
    id: Uuid,
    if_match: Option<&str>,
    changes: TaskChanges,
) -> AppResult<Task> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let (mut task, role) = visible_for_write(&mut work, principal, id).await?;
    require_writer(role)?;
    etag::require_match(if_match, task.version)?;
    if let Some(assignee) = changes.assignee_id.value() {
        check_assignee(&mut *work, task.project_id, *assignee).await?;
    }
    let current_tags = work.tags_of(id).await?;
    let applied = apply_changes(&mut task, current_tags, changes);
    if applied.summary.is_empty() {
        return Ok(Task::new(task, applied.tags));
    }
    task.version += 1;
    task.updated_at = crate::db::now();
    work.update_task(&task).await?;
    if applied.tags_changed {
        work.replace_tags(id, &applied.tags).await?;
    }
    work.record_activity(id, TaskActivity::Updated(applied.changes))
        .await?;
    let project_id = task.project_id;
    let updated = Task::new(task, applied.tags);
    work.record(Change {
        action: "task.updated",
        entity_type: "task",
        entity_id: id,
        project_id: Some(project_id),
        summary: Value::Object(applied.summary),
        resource: resource(&updated),
    })
    .await?;
    work.invalidate([keys::task(id)]);
    work.commit().await?;
    ctx.metrics.tasks.updated.increment(1);
    Ok(updated)
}

/// What [`apply_changes`] did: the changed fields with their new values (empty when nothing
/// changed), each change with its old value too, and the task's tags after the change.
struct Applied {
    summary: Map<String, Value>,
    changes: Vec<FieldChange>,
    tags: Vec<String>,
    tags_changed: bool,
}

/// Applies `changes` to `task` (whose tags are `tags`), keeping only real changes: a field set
/// to the value it already has is not a change.
fn apply_changes(task: &mut TaskRecord, tags: Vec<String>, changes: TaskChanges) -> Applied {
    let mut summary = Map::new();
    let mut noted = Vec::new();
    let mut note = |field: TaskField, old: Value, new: Value| {
        summary.insert(field.as_str().to_owned(), new.clone());
        noted.push(FieldChange { field, old, new });
    };
    if let Some(title) = changes.title.filter(|t| *t != task.title) {
        note(TaskField::Title, json!(task.title), json!(title));
        task.title = title;
    }
    if let Some(description) = changes.description.filter(|d| *d != task.description) {
        note(
            TaskField::Description,
            json!(task.description),
            json!(description),
        );
        task.description = description;
    }
    if let Some(status) = changes.status.filter(|s| s.as_str() != task.status) {
        note(TaskField::Status, json!(task.status), json!(status));
        task.status = status.as_str().to_owned();
    }
    if let Some(priority) = changes.priority.filter(|p| p.rank() != task.priority) {
        let old = Priority::from_rank(task.priority);
        note(TaskField::Priority, json!(old), json!(priority));
        task.priority = priority.rank();
    }
    if let Some(assignee) = changed(changes.assignee_id, task.assignee_id) {
        note(
            TaskField::AssigneeId,
            json!(task.assignee_id),
            json!(assignee),
        );
        task.assignee_id = assignee;
    }
    if let Some(due_at) = changed(changes.due_at, task.due_at) {
        note(TaskField::DueAt, json!(task.due_at), json!(due_at));
        task.due_at = due_at;
    }
    let new_tags = changes.tags.map(|mut t| {
        t.sort();
        t
    });
    let tags_changed = new_tags.as_ref().is_some_and(|t| *t != tags);
    let tags = match new_tags.filter(|_| tags_changed) {
        Some(new_tags) => {
            note(TaskField::Tags, json!(tags), json!(new_tags));
            new_tags
        }
        None => tags,
    };
    Applied {
        summary,
        changes: noted,
        tags,
        tags_changed,
    }
}

/// The new value of a nullable field, if the change sets or clears it to something different.
fn changed<T: PartialEq>(change: MaybeUndefined<T>, current: Option<T>) -> Option<Option<T>> {
    let new = match change {
        MaybeUndefined::Undefined => return None,
        MaybeUndefined::Null => None,
        MaybeUndefined::Value(value) => Some(value),
    };
    (new != current).then_some(new)
}

/// Deletes a task (owners and members); a stale `If-Match` gets 412.
pub async fn delete(
    ctx: &DomainContext,
    principal: &Principal,
    id: Uuid,
    if_match: Option<&str>,
) -> AppResult<()> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let (task, role) = visible_for_write(&mut work, principal, id).await?;
    require_writer(role)?;
    etag::require_match(if_match, task.version)?;
    work.delete_task(id).await?;
    work.record(Change {
        action: "task.deleted",
        entity_type: "task",
        entity_id: id,
        project_id: Some(task.project_id),
        summary: json!({ "title": task.title, "version": task.version }),
        resource: json!({ "id": id, "project_id": task.project_id }),
    })
    .await?;
    work.invalidate([keys::task(id)]);
    work.commit().await?;
    ctx.metrics.tasks.deleted.increment(1);
    Ok(())
}

/// A list request: filters, sort and page.
pub struct ListRequest<'a> {
    /// The document of a task version the caller already has, if it has it (see
    /// [`TaskQuery::known`]); such tasks come back as [`ListedItem::Rendered`].
    pub known: &'a dyn KnownDocuments,
    /// Which tasks.
    pub filter: TaskFilter,
    /// The column the list is sorted by.
    pub sort: SortColumn,
    /// Newest, latest or most urgent first.
    pub descending: bool,
    /// `next_cursor` of the previous page; `None` for the first.
    pub cursor: Option<&'a str>,
    /// Page size, 1 to 100.
    pub limit: u32,
}

/// An item of a task list page.
pub enum ListedItem {
    /// The document the caller already had for the task's current version.
    Rendered(Bytes),
    /// The task.
    Task(Task),
}

/// One page of a project's tasks (any member). The cursor is the last row's sort key, so rows
/// inserted between pages cause neither duplicates nor gaps. With a read replica the page may
/// be slightly stale, never older than the caller's own last write.
pub async fn list(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    request: ListRequest<'_>,
) -> AppResult<(Vec<ListedItem>, Option<String>)> {
    // Membership is decided on the primary (or the cache); the page may come from the replica.
    let mut store = ctx.read().await?;
    cached_role(ctx, project_id, principal.user_id, Some(&mut *store)).await?;
    let mut store = ctx.prefer_replica(store, principal.user_id).await;
    list_in(&mut *store, TaskScope::Project(project_id), request).await
}

/// One page of the caller's tasks ("my tasks"): those `relation` ties to them, in every project
/// they are a member of at the time of the query.
pub async fn list_mine(
    ctx: &DomainContext,
    principal: &Principal,
    relation: Relation,
    request: ListRequest<'_>,
) -> AppResult<(Vec<ListedItem>, Option<String>)> {
    let mut store = ctx.read().await?;
    let scope = TaskScope::Mine {
        user_id: principal.user_id,
        relation,
    };
    list_in(&mut *store, scope, request).await
}

/// One page of the tasks of `scope`. A cursor is bound to the scope, filters and sort it was
/// made for.
async fn list_in(
    store: &mut dyn TaskStore,
    scope: TaskScope,
    request: ListRequest<'_>,
) -> AppResult<(Vec<ListedItem>, Option<String>)> {
    if request.sort == SortColumn::Relevance && request.filter.text.is_none() {
        return Err(AppError::field(
            "sort",
            "`relevance` ranks the matches of a text search: give `q` too",
        ));
    }
    let scope_json = serde_json::to_string(&scope).unwrap_or_default();
    let filter_json = serde_json::to_string(&request.filter).unwrap_or_default();
    let mut paging = Paging::<SortKey>::new(
        &[
            "tasks",
            &scope_json,
            &format!("{:?}/{}", request.sort, request.descending),
            &filter_json,
        ],
        request.cursor,
        request.limit,
    )?;
    let query = TaskQuery {
        known: request.known,
        scope,
        filter: &request.filter,
        sort: request.sort,
        descending: request.descending,
        after: paging.after.take(),
        limit: paging.fetch(),
    };
    let mut rows = store.list_tasks(&query).await?;
    let next = paging.finish(&mut rows, |row| match row {
        ListedRow::Known { key, .. } => key.clone(),
        ListedRow::Full(row) => row.key(request.sort, request.descending),
    });
    let items = rows
        .into_iter()
        .map(|row| match row {
            ListedRow::Known { document, .. } => ListedItem::Rendered(document),
            ListedRow::Full(row) => ListedItem::Task(Task::new(row.task, row.tags.0)),
        })
        .collect();
    Ok((items, next))
}
