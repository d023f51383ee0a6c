//! Project rules: who may see, change and delete a project, member management, and the
//! at-least-one-owner invariant. Non-members get 404 for everything about a project.
//!
//! A caller's role is read in one of two ways: [`cached_role`] for reads and for decisions that
//! a stale answer cannot make unsafe (a removal reaches every instance's cache at once), and
//! [`current_role`], uncached, for owner decisions taken under the project's row lock.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::activity::model::{FieldChange, TaskActivity, TaskField};
use crate::audit::model::{Change, resource};
use crate::auth::Principal;
use crate::cache::keys;
use crate::domain::{DomainContext, UnitOfWork};
use crate::error::{AppError, AppResult};
use crate::idempotency::{self, Begun, IdempotencyKey};
use crate::paging::Paging;
use crate::projects::model::{Member, Project, ProjectRole, project_data};
use crate::projects::store::{ProjectRecord, ProjectStore};
use crate::store::Store;
use crate::tasks::model::Task;

/// The role of `user_id` in a project as the store holds it now (no cache), or 404 when they
/// are not a member (so project ids cannot be probed).
pub async fn current_role(
    store: &mut dyn ProjectStore,
    project_id: Uuid,
    user_id: Uuid,
) -> AppResult<ProjectRole> {
    store
        .member_role(project_id, user_id)
        .await?
        .map(|role| ProjectRole::from_stored(&role))
        .ok_or(AppError::NotFound("project"))
}

/// The role of `user_id` in a project from the cache (`member:<project>:<user>`), or 404 when
/// they are not a member. Membership changes invalidate it on every instance. A miss is loaded
/// through `via` when given (so a transaction never waits for a second connection), else
/// through a pooled connection taken only then (reads the cache answers never touch the
/// database).
pub async fn cached_role(
    ctx: &DomainContext,
    project_id: Uuid,
    user_id: Uuid,
    via: Option<&mut dyn Store>,
) -> AppResult<ProjectRole> {
    let role: Option<String> = ctx
        .cache
        .get_or_load("member", keys::member(project_id, user_id), || async {
            Ok(match via {
                Some(store) => store.member_role(project_id, user_id).await?,
                None => ctx.read().await?.member_role(project_id, user_id).await?,
            })
        })
        .await?;
    role.map(|r| ProjectRole::from_stored(&r))
        .ok_or(AppError::NotFound("project"))
}

/// Refuses (403) anyone but an owner.
pub fn require_owner(role: ProjectRole) -> AppResult<()> {
    match role {
        ProjectRole::Owner => Ok(()),
        _ => Err(AppError::Forbidden("only a project owner may do this")),
    }
}

/// Locks a project for the rest of the write and returns it: 404 for non-members, 403 unless
/// the caller owns it.
async fn lock_owned(
    work: &mut UnitOfWork<'_>,
    id: Uuid,
    principal: &Principal,
) -> AppResult<ProjectRecord> {
    work.lock_project(id).await?;
    let found = work
        .project_for_member(id, principal.user_id)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    require_owner(ProjectRole::from_stored(&found.role))?;
    Ok(found.project)
}

/// Creates a project owned by the caller.
pub async fn create(
    ctx: &DomainContext,
    principal: &Principal,
    name: String,
    description: String,
    key: Option<&IdempotencyKey>,
) -> AppResult<Project> {
    let mut work = match idempotency::begin(ctx, principal.user_id, key).await? {
        Begun::Replay(original) => return Ok(original),
        Begun::Fresh(work) => work,
    };
    let now = crate::db::now();
    let project = ProjectRecord {
        id: Uuid::now_v7(),
        name,
        description,
        created_by: principal.user_id,
        created_at: now,
        updated_at: now,
    };
    work.insert_project(&project).await?;
    work.insert_member(
        project.id,
        principal.user_id,
        ProjectRole::Owner.as_str(),
        now,
    )
    .await?;
    work.record(Change {
        action: "project.created",
        entity_type: "project",
        entity_id: project.id,
        project_id: Some(project.id),
        summary: json!({ "name": project.name, "description": project.description }),
        resource: project_data(&project),
    })
    .await?;
    let committed =
        idempotency::commit(work, key, Project::new(project, ProjectRole::Owner)).await?;
    Ok(committed.answer)
}

/// A project the caller belongs to.
pub async fn get(ctx: &DomainContext, principal: &Principal, id: Uuid) -> AppResult<Project> {
    let role = cached_role(ctx, id, principal.user_id, None).await?;
    let project: Option<ProjectRecord> = ctx
        .cache
        .get_or_load("project", keys::project(id), || async {
            Ok(ctx.read().await?.project_by_id(id).await?)
        })
        .await?;
    let project = project.ok_or(AppError::NotFound("project"))?;
    Ok(Project::new(project, role))
}

/// The caller's projects, one page at a time.
pub async fn list_mine(
    ctx: &DomainContext,
    principal: &Principal,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Project>, Option<String>)> {
    let paging = Paging::<Uuid>::new(&["projects"], cursor, limit)?;
    let rows = ctx
        .read()
        .await?
        .projects_of(principal.user_id, paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |p| p.project.id))
}

/// Renames or re-describes a project (owners only).
pub async fn update(
    ctx: &DomainContext,
    principal: &Principal,
    id: Uuid,
    name: Option<String>,
    description: Option<String>,
) -> AppResult<Project> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let mut project = lock_owned(&mut work, id, principal).await?;
    let mut summary = Map::new();
    if let Some(name) = name.filter(|n| *n != project.name) {
        summary.insert("name".into(), json!(name));
        project.name = name;
    }
    if let Some(description) = description.filter(|d| *d != project.description) {
        summary.insert("description".into(), json!(description));
        project.description = description;
    }
    if !summary.is_empty() {
        project.updated_at = crate::db::now();
        work.update_project(&project).await?;
        work.record(Change {
            action: "project.updated",
            entity_type: "project",
            entity_id: id,
            project_id: Some(id),
            summary: Value::Object(summary),
            resource: project_data(&project),
        })
        .await?;
        work.invalidate([keys::project(id)]);
    }
    work.commit().await?;
    Ok(Project::new(project, ProjectRole::Owner))
}

/// Deletes a project with its tasks and members (owners only); the audit entry remains.
pub async fn delete(ctx: &DomainContext, principal: &Principal, id: Uuid) -> AppResult<()> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let project = lock_owned(&mut work, id, principal).await?;
    let tasks_deleted = work.count_tasks(id).await?;
    let members = work.member_ids(id).await?;
    work.delete_project(id).await?;
    work.record(Change {
        action: "project.deleted",
        entity_type: "project",
        entity_id: id,
        project_id: Some(id),
        summary: json!({ "name": project.name, "tasks_deleted": tasks_deleted }),
        resource: json!({ "id": id }),
    })
    .await?;
    work.invalidate(members.into_iter().map(|m| keys::member(id, m)));
    work.invalidate([keys::project(id)]);
    work.commit().await
}

/// A project's members, one page at a time (any member may read them).
pub async fn members(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Member>, Option<String>)> {
    let mut store = ctx.read().await?;
    cached_role(ctx, project_id, principal.user_id, Some(&mut *store)).await?;
    let paging = Paging::<Uuid>::new(&["members", &project_id.to_string()], cursor, limit)?;
    let rows = store
        .members(project_id, paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |m| m.user_id))
}

/// Adds a member or changes their role (owners only). Demoting the last owner is refused.
pub async fn put_member(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    user_id: Uuid,
    role: ProjectRole,
) -> AppResult<Member> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    work.lock_project(project_id).await?;
    require_owner(current_role(&mut *work, project_id, principal.user_id).await?)?;
    if work.user_by_id(user_id).await?.is_none() {
        return Err(AppError::NotFound("user"));
    }
    let (action, summary) = match work.member(project_id, user_id).await? {
        Some(existing) if existing.role == role.as_str() => return Ok(existing.into()),
        Some(existing) => {
            if existing.role == ProjectRole::Owner.as_str()
                && work.count_owners(project_id).await? <= 1
            {
                return Err(last_owner());
            }
            work.update_member_role(project_id, user_id, role.as_str())
                .await?;
            (
                "member.role_changed",
                json!({ "role": role.as_str(), "previous_role": existing.role }),
            )
        }
        None => {
            work.insert_member(project_id, user_id, role.as_str(), crate::db::now())
                .await?;
            ("member.added", json!({ "role": role.as_str() }))
        }
    };
    let member = Member::from(
        work.member(project_id, user_id)
            .await?
            .ok_or(AppError::NotFound("member"))?,
    );
    work.record(Change {
        action,
        entity_type: "member",
        entity_id: user_id,
        project_id: Some(project_id),
        summary,
        resource: resource(&member),
    })
    .await?;
    work.invalidate([keys::member(project_id, user_id)]);
    work.commit().await?;
    Ok(member)
}

/// Removes a member (owners, or members removing themselves); their tasks become unassigned.
/// Removing the last owner is refused.
pub async fn remove_member(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    user_id: Uuid,
) -> AppResult<()> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    work.lock_project(project_id).await?;
    if user_id != principal.user_id {
        require_owner(current_role(&mut *work, project_id, principal.user_id).await?)?;
    }
    let member = work
        .member(project_id, user_id)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    if member.role == ProjectRole::Owner.as_str() && work.count_owners(project_id).await? <= 1 {
        return Err(last_owner());
    }
    work.delete_member(project_id, user_id).await?;
    let unassigned = work.unassign_member_tasks(project_id, user_id).await?;
    for task_id in &unassigned {
        let change = FieldChange {
            field: TaskField::AssigneeId,
            old: json!(user_id),
            new: Value::Null,
        };
        work.record_activity(*task_id, TaskActivity::Updated(vec![change]))
            .await?;
        if let Some(task) = work.task_with_tags(*task_id).await? {
            work.record_event(Change {
                action: "task.updated",
                entity_type: "task",
                entity_id: *task_id,
                project_id: Some(project_id),
                summary: json!({ "assignee_id": null }),
                resource: resource(&Task::new(task.task, task.tags.0)),
            })
            .await?;
        }
    }
    work.record(Change {
        action: "member.removed",
        entity_type: "member",
        entity_id: user_id,
        project_id: Some(project_id),
        summary: json!({ "previous_role": member.role }),
        resource: json!({ "user_id": user_id, "project_id": project_id }),
    })
    .await?;
    work.invalidate([keys::member(project_id, user_id)]);
    work.invalidate(unassigned.into_iter().map(keys::task));
    work.commit().await
}

fn last_owner() -> AppError {
    AppError::Conflict(
        "a project must keep at least one owner: make another member owner first".into(),
    )
}
