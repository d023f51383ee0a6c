//! Task rules: members and owners write, viewers read, outsiders see nothing (404); assignees
//! must be members; `If-Match` guards writes against lost updates.

use std::collections::HashMap;

use poem_openapi::types::MaybeUndefined;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::Principal;
use crate::cache::keys;
use crate::db::Store;
use crate::error::{AppError, AppResult};
use crate::http::etag;
use crate::http::pagination::Paging;
use crate::idempotency::IdempotencyKey;
use crate::projects::model::ProjectRole;
use crate::projects::service::{cached_role, role_of};
use crate::tasks::model::{Priority, Task, TaskStatus};
use crate::tasks::store::{SortColumn, SortKey, TaskFilter, TaskQuery, TaskRecord};

/// A new task (already validated).
pub struct NewTask {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: TaskStatus,
    /// Priority.
    pub priority: Priority,
    /// Assignee.
    pub assignee_id: Option<Uuid>,
    /// Due time.
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Tags.
    pub tags: Vec<String>,
}

/// Changes to a task; `Undefined` leaves a field alone, `Null` clears it.
#[derive(Default)]
pub struct TaskChanges {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<TaskStatus>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New or cleared assignee.
    pub assignee_id: MaybeUndefined<Uuid>,
    /// New or cleared due time.
    pub due_at: MaybeUndefined<chrono::DateTime<chrono::Utc>>,
    /// New tags.
    pub tags: Option<Vec<String>>,
}

async fn require_writer(
    state: &AppState,
    store: &mut dyn Store,
    project_id: Uuid,
    principal: &Principal,
) -> AppResult<()> {
    if role_of(state, store, project_id, principal)
        .await?
        .can_write_tasks()
    {
        Ok(())
    } else {
        Err(AppError::Forbidden("viewers cannot change tasks"))
    }
}

async fn check_assignee(store: &mut dyn Store, project_id: Uuid, assignee: Uuid) -> AppResult<()> {
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
    state: &AppState,
    principal: &Principal,
    project_id: Uuid,
    new: NewTask,
    idempotency: Option<&IdempotencyKey>,
) -> AppResult<Task> {
    let mut tx = state.db.begin().await?;
    if let Some(key) = idempotency
        && let Some(original) = key.stored(&mut *tx).await?
    {
        return Ok(original);
    }
    require_writer(state, &mut *tx, project_id, principal).await?;
    if let Some(assignee) = new.assignee_id {
        check_assignee(&mut *tx, project_id, assignee).await?;
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
    };
    let mut tags = new.tags;
    tags.sort();
    tx.insert_task(&task).await?;
    tx.replace_tags(task.id, &tags).await?;
    let change = Change {
        action: "task.created",
        entity_type: "task",
        entity_id: task.id,
        project_id: Some(project_id),
        summary: json!({
            "title": task.title, "status": task.status, "priority": new.priority,
            "assignee_id": task.assignee_id, "due_at": task.due_at, "tags": tags,
        }),
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    let task = Task::new(task, tags);
    if let Some(key) = idempotency
        && !key.remember(&mut *tx, 201, &task).await?
    {
        drop(tx);
        return key.replay_winner(state).await;
    }
    tx.commit().await?;
    state.metrics.tasks.created.increment(1);
    Ok(task)
}

/// Loads a task the caller may see, with its tags, and the caller's role.
async fn visible(
    state: &AppState,
    store: &mut dyn Store,
    principal: &Principal,
    id: Uuid,
    lock: bool,
) -> AppResult<(TaskRecord, ProjectRole)> {
    let task = store
        .task_by_id(id, lock)
        .await?
        .ok_or(AppError::NotFound("task"))?;
    let role = role_of(state, store, task.project_id, principal)
        .await
        .map_err(|_| AppError::NotFound("task"))?;
    Ok((task, role))
}

async fn tags(store: &mut dyn Store, id: Uuid) -> AppResult<Vec<String>> {
    Ok(store
        .tags_of(&[id])
        .await?
        .into_iter()
        .map(|(_, tag)| tag)
        .collect())
}

/// A task the caller may see.
/// From the cache (`task:<id>`, with its tags, and the caller's role): a read the cache answers
/// does not touch the database. Every change to the task invalidates it on every instance.
pub async fn get(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<Task> {
    let cached: Option<(TaskRecord, Vec<String>)> = state
        .cache
        .get_or_load("task", keys::task(id), || async {
            let mut store = state.db.conn().await?;
            match store.task_by_id(id, false).await? {
                Some(task) => {
                    let tags = tags(&mut *store, id).await?;
                    Ok(Some((task, tags)))
                }
                None => Ok(None),
            }
        })
        .await?;
    let (task, tags) = cached.ok_or(AppError::NotFound("task"))?;
    cached_role(state, task.project_id, principal)
        .await
        .map_err(|_| AppError::NotFound("task"))?;
    Ok(Task::new(task, tags))
}

fn check_precondition(if_match: Option<&str>, task: &TaskRecord) -> AppResult<()> {
    match if_match {
        Some(header) if !etag::if_match(header, &etag::for_version(task.version)) => {
            Err(AppError::PreconditionFailed)
        }
        _ => Ok(()),
    }
}

/// Changes a task (owners and members). With `If-Match`, a stale version gets 412; the row is
/// locked while it is compared and written, so of concurrent writers with one ETag exactly one
/// wins.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    if_match: Option<&str>,
    changes: TaskChanges,
) -> AppResult<Task> {
    let mut tx = state.db.begin().await?;
    let (mut task, role) = visible(state, &mut *tx, principal, id, true).await?;
    if !role.can_write_tasks() {
        return Err(AppError::Forbidden("viewers cannot change tasks"));
    }
    check_precondition(if_match, &task)?;
    let mut summary = Map::new();
    let mut note = |field: &str, value: Value| summary.insert(field.to_owned(), value);
    if let Some(title) = changes.title.filter(|t| *t != task.title) {
        note("title", json!(title));
        task.title = title;
    }
    if let Some(description) = changes.description.filter(|d| *d != task.description) {
        note("description", json!(description));
        task.description = description;
    }
    if let Some(status) = changes.status.filter(|s| s.as_str() != task.status) {
        note("status", json!(status));
        task.status = status.as_str().to_owned();
    }
    if let Some(priority) = changes.priority.filter(|p| p.rank() != task.priority) {
        note("priority", json!(priority));
        task.priority = priority.rank();
    }
    if let Some(assignee) = changes.assignee_id.value() {
        check_assignee(&mut *tx, task.project_id, *assignee).await?;
    }
    if let Some(assignee) = changed(changes.assignee_id, task.assignee_id) {
        note("assignee_id", json!(assignee));
        task.assignee_id = assignee;
    }
    if let Some(due_at) = changed(changes.due_at, task.due_at) {
        note("due_at", json!(due_at));
        task.due_at = due_at;
    }
    let mut tags = tags(&mut *tx, id).await?;
    let new_tags = changes.tags.map(|mut t| {
        t.sort();
        t
    });
    let tags_changed = new_tags.as_ref().is_some_and(|t| *t != tags);
    if let Some(new_tags) = new_tags.filter(|_| tags_changed) {
        note("tags", json!(new_tags));
        tags = new_tags;
    }
    if summary.is_empty() {
        return Ok(Task::new(task, tags));
    }
    task.version += 1;
    task.updated_at = crate::db::now();
    tx.update_task(&task).await?;
    if tags_changed {
        tx.replace_tags(id, &tags).await?;
    }
    let change = Change {
        action: "task.updated",
        entity_type: "task",
        entity_id: id,
        project_id: Some(task.project_id),
        summary: Value::Object(summary),
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    tx.commit().await?;
    state.cache.invalidate(&[keys::task(id)]).await;
    state.metrics.tasks.updated.increment(1);
    Ok(Task::new(task, tags))
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
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    if_match: Option<&str>,
) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    let (task, role) = visible(state, &mut *tx, principal, id, true).await?;
    if !role.can_write_tasks() {
        return Err(AppError::Forbidden("viewers cannot change tasks"));
    }
    check_precondition(if_match, &task)?;
    tx.delete_task(id).await?;
    let change = Change {
        action: "task.deleted",
        entity_type: "task",
        entity_id: id,
        project_id: Some(task.project_id),
        summary: json!({ "title": task.title, "version": task.version }),
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    tx.commit().await?;
    state.cache.invalidate(&[keys::task(id)]).await;
    state.metrics.tasks.deleted.increment(1);
    Ok(())
}

/// A list request: filters, sort and page.
pub struct ListRequest<'a> {
    /// Filters.
    pub filter: TaskFilter,
    /// Sort column.
    pub sort: SortColumn,
    /// Descending order.
    pub descending: bool,
    /// Cursor from the previous page.
    pub cursor: Option<&'a str>,
    /// Page size.
    pub limit: u32,
}

/// One page of a project's tasks (any member). The cursor is the last row's sort key, so rows
/// inserted between pages cause neither duplicates nor gaps.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    project_id: Uuid,
    request: ListRequest<'_>,
) -> AppResult<(Vec<Task>, Option<String>)> {
    let mut store = state.db.conn().await?;
    role_of(state, &mut *store, project_id, principal).await?;
    let filter_json = serde_json::to_string(&request.filter).unwrap_or_default();
    let mut paging = Paging::<SortKey>::new(
        &[
            "tasks",
            &project_id.to_string(),
            &format!("{:?}/{}", request.sort, request.descending),
            &filter_json,
        ],
        request.cursor,
        request.limit,
    )?;
    let query = TaskQuery {
        project_id,
        filter: &request.filter,
        sort: request.sort,
        descending: request.descending,
        after: paging.after.take(),
        limit: paging.fetch(),
    };
    let mut rows = store.list_tasks(&query).await?;
    let next = paging.finish(&mut rows, |t| request.sort.key_of(t, request.descending));
    let ids: Vec<Uuid> = rows.iter().map(|t| t.id).collect();
    let mut tags: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (task_id, tag) in store.tags_of(&ids).await? {
        tags.entry(task_id).or_default().push(tag);
    }
    let items = rows
        .into_iter()
        .map(|t| {
            let task_tags = tags.remove(&t.id).unwrap_or_default();
            Task::new(t, task_tags)
        })
        .collect();
    Ok((items, next))
}
