//! Project rules: who may see, change and delete a project, member management, and the
//! at-least-one-owner invariant. Non-members get 404 for everything about a project.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::Principal;
use crate::cache::keys;
use crate::db::Store;
use crate::error::{AppError, AppResult};
use crate::http::pagination::Paging;
use crate::idempotency::IdempotencyKey;
use crate::projects::model::{Member, Project, ProjectRole};
use crate::projects::store::ProjectRecord;

/// The caller's role in a project, or 404 when they are not a member (so ids cannot be probed).
pub async fn role_in(
    store: &mut dyn Store,
    project_id: Uuid,
    principal: &Principal,
) -> AppResult<ProjectRole> {
    store
        .member_role(project_id, principal.user_id)
        .await?
        .map(|role| ProjectRole::from_stored(&role))
        .ok_or(AppError::NotFound("project"))
}

/// The caller's role in a project from the cache (`member:<project>:<user>`), or 404 when they
/// are not a member. Membership changes invalidate it on every instance.
/// A miss is loaded through `store`, so a transaction never waits for a second connection.
pub async fn role_of(
    state: &AppState,
    store: &mut dyn Store,
    project_id: Uuid,
    principal: &Principal,
) -> AppResult<ProjectRole> {
    let user_id = principal.user_id;
    member_role(state, project_id, user_id, || async {
        Ok(store.member_role(project_id, user_id).await?)
    })
    .await
}

/// The cached role of `user_id` in a project, loaded by `load` on a miss; 404 for non-members.
async fn member_role<Fut>(
    state: &AppState,
    project_id: Uuid,
    user_id: Uuid,
    load: impl FnOnce() -> Fut,
) -> AppResult<ProjectRole>
where
    Fut: Future<Output = AppResult<Option<String>>>,
{
    let role: Option<String> = state
        .cache
        .get_or_load("member", keys::member(project_id, user_id), load)
        .await?;
    role.map(|r| ProjectRole::from_stored(&r))
        .ok_or(AppError::NotFound("project"))
}

/// Like [`role_in`], and 403 unless the caller owns the project.
async fn require_owner(
    store: &mut dyn Store,
    project_id: Uuid,
    principal: &Principal,
) -> AppResult<()> {
    match role_in(store, project_id, principal).await? {
        ProjectRole::Owner => Ok(()),
        _ => Err(AppError::Forbidden("only a project owner may do this")),
    }
}

/// Locks a project for the rest of the transaction and returns it: 404 for non-members, 403
/// unless the caller owns it.
async fn lock_owned(
    store: &mut dyn Store,
    id: Uuid,
    principal: &Principal,
) -> AppResult<ProjectRecord> {
    store.lock_project(id).await?;
    let found = store
        .project_for_member(id, principal.user_id)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    match ProjectRole::from_stored(&found.role) {
        ProjectRole::Owner => Ok(found.project),
        _ => Err(AppError::Forbidden("only a project owner may do this")),
    }
}

/// Creates a project owned by the caller.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    name: String,
    description: String,
    idempotency: Option<&IdempotencyKey>,
) -> AppResult<Project> {
    let mut tx = state.db.begin().await?;
    if let Some(key) = idempotency
        && let Some(original) = key.stored(&mut *tx).await?
    {
        return Ok(original);
    }
    let now = crate::db::now();
    let project = ProjectRecord {
        id: Uuid::now_v7(),
        name,
        description,
        created_by: principal.user_id,
        created_at: now,
        updated_at: now,
    };
    tx.insert_project(&project).await?;
    tx.insert_member(
        project.id,
        principal.user_id,
        ProjectRole::Owner.as_str(),
        now,
    )
    .await?;
    let change = Change {
        action: "project.created",
        entity_type: "project",
        entity_id: project.id,
        project_id: Some(project.id),
        summary: json!({ "name": project.name, "description": project.description }),
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    let project = Project::new(project, ProjectRole::Owner);
    if let Some(key) = idempotency
        && !key.remember(&mut *tx, 201, &project).await?
    {
        drop(tx);
        return key.replay_winner(state).await;
    }
    tx.commit().await?;
    Ok(project)
}

/// A project the caller belongs to.
pub async fn get(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<Project> {
    let role = cached_role(state, id, principal).await?;
    let project: Option<ProjectRecord> = state
        .cache
        .get_or_load("project", keys::project(id), || async {
            Ok(state.db.conn().await?.project_by_id(id).await?)
        })
        .await?;
    let project = project.ok_or(AppError::NotFound("project"))?;
    Ok(Project::new(project, role))
}

/// Like [`role_of`], taking a pooled connection only on a cache miss (reads that the cache
/// answers never touch the database).
pub async fn cached_role(
    state: &AppState,
    project_id: Uuid,
    principal: &Principal,
) -> AppResult<ProjectRole> {
    let user_id = principal.user_id;
    member_role(state, project_id, user_id, || async {
        Ok(state
            .db
            .conn()
            .await?
            .member_role(project_id, user_id)
            .await?)
    })
    .await
}

/// The caller's projects, one page at a time.
pub async fn list_mine(
    state: &AppState,
    principal: &Principal,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Project>, Option<String>)> {
    let paging = Paging::<Uuid>::new(&["projects"], cursor, limit)?;
    let mut rows = state
        .db
        .conn()
        .await?
        .projects_of(principal.user_id, paging.after, paging.fetch())
        .await?;
    let next = paging.finish(&mut rows, |p| p.project.id);
    let items = rows
        .into_iter()
        .map(|r| Project::new(r.project, ProjectRole::from_stored(&r.role)))
        .collect();
    Ok((items, next))
}

/// Renames or re-describes a project (owners only).
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    name: Option<String>,
    description: Option<String>,
) -> AppResult<Project> {
    let mut tx = state.db.begin().await?;
    let mut project = lock_owned(&mut *tx, id, principal).await?;
    let mut summary = Map::new();
    if let Some(name) = name.filter(|n| *n != project.name) {
        summary.insert("name".into(), json!(name));
        project.name = name;
    }
    if let Some(description) = description.filter(|d| *d != project.description) {
        summary.insert("description".into(), json!(description));
        project.description = description;
    }
    let changed = !summary.is_empty();
    if changed {
        project.updated_at = crate::db::now();
        tx.update_project(&project).await?;
        let change = Change {
            action: "project.updated",
            entity_type: "project",
            entity_id: id,
            project_id: Some(id),
            summary: Value::Object(summary),
        };
        audit::record(
            &mut *tx,
            &state.config.instance_id,
            Some(principal.user_id),
            change,
        )
        .await?;
    }
    tx.commit().await?;
    if changed {
        state.cache.invalidate(&[keys::project(id)]).await;
    }
    Ok(Project::new(project, ProjectRole::Owner))
}

/// Deletes a project with its tasks and members (owners only); the audit entry remains.
pub async fn delete(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    let project = lock_owned(&mut *tx, id, principal).await?;
    let tasks_deleted = tx.count_tasks(id).await?;
    let members = tx.member_ids(id).await?;
    tx.delete_project(id).await?;
    let change = Change {
        action: "project.deleted",
        entity_type: "project",
        entity_id: id,
        project_id: Some(id),
        summary: json!({ "name": project.name, "tasks_deleted": tasks_deleted }),
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    tx.commit().await?;
    let mut stale: Vec<String> = members.into_iter().map(|m| keys::member(id, m)).collect();
    stale.push(keys::project(id));
    state.cache.invalidate(&stale).await;
    Ok(())
}

/// A project's members, one page at a time (any member may read them).
pub async fn members(
    state: &AppState,
    principal: &Principal,
    project_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Member>, Option<String>)> {
    let mut store = state.db.conn().await?;
    role_of(state, &mut *store, project_id, principal).await?;
    let paging = Paging::<Uuid>::new(&["members", &project_id.to_string()], cursor, limit)?;
    let mut rows = store
        .members(project_id, paging.after, paging.fetch())
        .await?;
    let next = paging.finish(&mut rows, |m| m.user_id);
    Ok((rows.into_iter().map(Member::from).collect(), next))
}

/// Adds a member or changes their role (owners only). Demoting the last owner is refused.
pub async fn put_member(
    state: &AppState,
    principal: &Principal,
    project_id: Uuid,
    user_id: Uuid,
    role: ProjectRole,
) -> AppResult<Member> {
    let mut tx = state.db.begin().await?;
    tx.lock_project(project_id).await?;
    require_owner(&mut *tx, project_id, principal).await?;
    if tx.user_by_id(user_id).await?.is_none() {
        return Err(AppError::NotFound("user"));
    }
    let (action, summary) = match tx.member(project_id, user_id).await? {
        Some(existing) if existing.role == role.as_str() => return Ok(existing.into()),
        Some(existing) => {
            if existing.role == ProjectRole::Owner.as_str()
                && tx.count_owners(project_id).await? <= 1
            {
                return Err(last_owner());
            }
            tx.update_member_role(project_id, user_id, role.as_str())
                .await?;
            (
                "member.role_changed",
                json!({ "role": role.as_str(), "previous_role": existing.role }),
            )
        }
        None => {
            tx.insert_member(project_id, user_id, role.as_str(), crate::db::now())
                .await?;
            ("member.added", json!({ "role": role.as_str() }))
        }
    };
    let change = Change {
        action,
        entity_type: "member",
        entity_id: user_id,
        project_id: Some(project_id),
        summary,
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    let member = tx
        .member(project_id, user_id)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    tx.commit().await?;
    state
        .cache
        .invalidate(&[keys::member(project_id, user_id)])
        .await;
    Ok(member.into())
}

/// Removes a member (owners, or members removing themselves); their tasks become unassigned.
/// Removing the last owner is refused.
pub async fn remove_member(
    state: &AppState,
    principal: &Principal,
    project_id: Uuid,
    user_id: Uuid,
) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    tx.lock_project(project_id).await?;
    if user_id != principal.user_id {
        require_owner(&mut *tx, project_id, principal).await?;
    }
    let member = tx
        .member(project_id, user_id)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    if member.role == ProjectRole::Owner.as_str() && tx.count_owners(project_id).await? <= 1 {
        return Err(last_owner());
    }
    tx.delete_member(project_id, user_id).await?;
    let unassigned = tx.unassign_member_tasks(project_id, user_id).await?;
    let change = Change {
        action: "member.removed",
        entity_type: "member",
        entity_id: user_id,
        project_id: Some(project_id),
        summary: json!({ "previous_role": member.role }),
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    tx.commit().await?;
    let mut stale = vec![keys::member(project_id, user_id)];
    stale.extend(unassigned.into_iter().map(keys::task));
    state.cache.invalidate(&stale).await;
    Ok(())
}

fn last_owner() -> AppError {
    AppError::Conflict(
        "a project must keep at least one owner: make another member owner first".into(),
    )
}
