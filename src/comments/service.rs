//! Comment rules: owners and members write, viewers read, outsiders and removed members see
//! nothing (404, as for the task). Authors edit and delete their own comments; project owners
//! may delete any. Adding or deleting a comment changes the task's `comment_count` and bumps
//! its version in the same transaction, and invalidates `task:<id>` on every instance.

use serde_json::json;
use uuid::Uuid;

use crate::audit::model::{Change, resource};
use crate::auth::Principal;
use crate::cache::keys;
use crate::comments::model::Comment;
use crate::comments::store::{CommentInProject, CommentKey, CommentRecord};
use crate::domain::{DomainContext, UnitOfWork};
use crate::error::{AppError, AppResult};
use crate::etag;
use crate::paging::Paging;
use crate::projects::model::ProjectRole;
use crate::projects::service::cached_role;

/// Refuses (403) viewers: only owners and members write comments.
fn require_writer(role: ProjectRole) -> AppResult<()> {
    if role.can_write_tasks() {
        Ok(())
    } else {
        Err(AppError::Forbidden("viewers cannot write comments"))
    }
}

/// Writes a comment on a task (owners and members; viewers get 403, others 404).
pub async fn create(
    ctx: &DomainContext,
    principal: &Principal,
    task_id: Uuid,
    body: String,
) -> AppResult<Comment> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    // The task's row stays locked until commit: its count and version change below.
    let task = work
        .task_by_id(task_id, true)
        .await?
        .ok_or(AppError::NotFound("task"))?;
    let role = cached_role(ctx, task.project_id, principal.user_id, Some(&mut *work))
        .await
        .map_err(|_| AppError::NotFound("task"))?;
    require_writer(role)?;
    let now = crate::db::now();
    let comment = CommentRecord {
        id: Uuid::now_v7(),
        task_id,
        author_id: principal.user_id,
        body,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    work.insert_comment(&comment).await?;
    work.change_comment_count(task_id, 1).await?;
    let created = Comment::from(comment);
    work.record(Change {
        action: "comment.created",
        entity_type: "comment",
        entity_id: created.id,
        project_id: Some(task.project_id),
        summary: json!({ "task_id": task_id, "body": created.body }),
        resource: resource(&created),
    })
    .await?;
    work.invalidate([keys::task(task_id)]);
    work.commit().await?;
    Ok(created)
}

/// One page of a task's comments, oldest first (any member of the task's project).
pub async fn list(
    ctx: &DomainContext,
    principal: &Principal,
    task_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Comment>, Option<String>)> {
    // The task from the cache, with the caller's role: 404 unless they may see it.
    crate::tasks::service::get(ctx, principal, task_id).await?;
    let paging = Paging::<CommentKey>::new(&["comments", &task_id.to_string()], cursor, limit)?;
    let mut store = ctx.read_stale(principal.user_id).await?;
    let rows = store
        .list_comments(task_id, paging.after.as_ref(), paging.fetch())
        .await?;
    Ok(paging.page(rows, |row| CommentKey {
        created_at: row.created_at,
        id: row.id,
    }))
}

/// A comment, for any member of its task's project.
pub async fn get(ctx: &DomainContext, principal: &Principal, id: Uuid) -> AppResult<Comment> {
    let found = ctx
        .read()
        .await?
        .comment_by_id(id, false)
        .await?
        .ok_or(AppError::NotFound("comment"))?;
    cached_role(ctx, found.project_id, principal.user_id, None)
        .await
        .map_err(|_| AppError::NotFound("comment"))?;
    Ok(found.comment.into())
}

/// Loads a comment for a write, with the caller's role: 404 when it does not exist or the
/// caller is not a member of its project. The task's row is locked before the comment's, the
/// order a task's deletion takes them in (it deletes the comments), so the two cannot deadlock.
async fn visible_for_write(
    work: &mut UnitOfWork<'_>,
    principal: &Principal,
    id: Uuid,
) -> AppResult<(CommentInProject, ProjectRole)> {
    let not_found = || AppError::NotFound("comment");
    let task_id = work
        .comment_by_id(id, false)
        .await?
        .ok_or_else(not_found)?
        .comment
        .task_id;
    work.task_by_id(task_id, true)
        .await?
        .ok_or_else(not_found)?;
    let found = work.comment_by_id(id, true).await?.ok_or_else(not_found)?;
    let ctx = work.context();
    let role = cached_role(ctx, found.project_id, principal.user_id, Some(&mut **work))
        .await
        .map_err(|_| not_found())?;
    Ok((found, role))
}

/// Changes a comment's text (its author only, while an owner or member of the project). With
/// `If-Match`, a stale version gets 412.
pub async fn update(
    ctx: &DomainContext,
    principal: &Principal,
    id: Uuid,
    if_match: Option<&str>,
    body: String,
) -> AppResult<Comment> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let (found, role) = visible_for_write(&mut work, principal, id).await?;
    require_writer(role)?;
    let mut comment = found.comment;
    if comment.author_id != principal.user_id {
        return Err(AppError::Forbidden("only its author may edit a comment"));
    }
    etag::require_match(if_match, comment.version)?;
    if comment.body == body {
        return Ok(comment.into());
    }
    comment.body = body;
    comment.version += 1;
    comment.updated_at = crate::db::now();
    work.update_comment(&comment).await?;
    let updated = Comment::from(comment);
    work.record(Change {
        action: "comment.updated",
        entity_type: "comment",
        entity_id: id,
        project_id: Some(found.project_id),
        summary: json!({ "task_id": updated.task_id, "body": updated.body }),
        resource: resource(&updated),
    })
    .await?;
    work.commit().await?;
    Ok(updated)
}

/// Deletes a comment (its author while an owner or member, or any owner of the project). With
/// `If-Match`, a stale version gets 412.
pub async fn delete(
    ctx: &DomainContext,
    principal: &Principal,
    id: Uuid,
    if_match: Option<&str>,
) -> AppResult<()> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let (found, role) = visible_for_write(&mut work, principal, id).await?;
    require_writer(role)?;
    let comment = found.comment;
    if comment.author_id != principal.user_id && role != ProjectRole::Owner {
        return Err(AppError::Forbidden(
            "only its author or a project owner may delete a comment",
        ));
    }
    etag::require_match(if_match, comment.version)?;
    work.delete_comment(id).await?;
    work.change_comment_count(comment.task_id, -1).await?;
    work.record(Change {
        action: "comment.deleted",
        entity_type: "comment",
        entity_id: id,
        project_id: Some(found.project_id),
        summary: json!({
            "task_id": comment.task_id, "author_id": comment.author_id, "version": comment.version,
        }),
        resource: json!({ "id": id, "task_id": comment.task_id }),
    })
    .await?;
    work.invalidate([keys::task(comment.task_id)]);
    work.commit().await?;
    Ok(())
}
