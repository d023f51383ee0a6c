//! Invitation rules: only owners invite, list and revoke (everyone else gets what the project
//! rules give them: 404 for non-members, 403 for members); only the holder of a verified
//! account with the invited address sees, accepts or declines an invitation (to anyone else it
//! does not exist). Answers never tell whether an address has an account.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::audit::model::{Change, resource};
use crate::auth::Principal;
use crate::cache::keys;
use crate::db::StoreError;
use crate::domain::DomainContext;
use crate::error::{AppError, AppResult};
use crate::invitations::model::Invitation;
use crate::invitations::store::{InvitationRecord, NewInvitation};
use crate::paging::Paging;
use crate::projects::model::{Member, Project, ProjectRole};
use crate::projects::service::{cached_role, current_role, require_owner};

const PENDING_ALREADY: &str = "email: this address already has a pending invitation to the \
                               project; revoke it first to invite it with another role";
const MEMBER_ALREADY: &str = "email: this address belongs to a member of the project already; \
                              change their role with PUT /projects/{project_id}/members/{user_id}";

/// Invites `email` (already normalised) into a project with `role` (owners only). The answer
/// is the same whether or not the address has an account.
pub async fn create(
    ctx: &DomainContext,
    ttl: Duration,
    principal: &Principal,
    project_id: Uuid,
    email: String,
    role: ProjectRole,
) -> AppResult<Invitation> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    work.lock_project(project_id).await?;
    require_owner(current_role(&mut *work, project_id, principal.user_id).await?)?;
    if work.member_has_email(project_id, &email).await? {
        return Err(AppError::Conflict(MEMBER_ALREADY.into()));
    }
    let now = crate::db::now();
    if let Some(pending) = work.pending_invitation(project_id, &email).await? {
        if pending.expires_at > now {
            return Err(AppError::Conflict(PENDING_ALREADY.into()));
        }
        work.close_invitation(pending.id, "expired", now).await?;
    }
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(14));
    let id = Uuid::now_v7();
    work.insert_invitation(&NewInvitation {
        id,
        project_id,
        email: &email,
        role: role.as_str(),
        invited_by: principal.user_id,
        created_at: now,
        expires_at: now + ttl,
    })
    .await
    .map_err(|err| match err {
        StoreError::Conflict(_) => AppError::Conflict(PENDING_ALREADY.into()),
        other => other.into(),
    })?;
    let invitation = work
        .invitation(id)
        .await?
        .ok_or(AppError::NotFound("invitation"))?;
    work.record(Change {
        action: "invitation.created",
        entity_type: "invitation",
        entity_id: id,
        project_id: Some(project_id),
        summary: json!({
            "email": email,
            "role": role.as_str(),
            "expires_at": invitation.expires_at,
        }),
        resource: json!({ "id": id, "project_id": project_id, "status": "pending" }),
    })
    .await?;
    work.commit().await?;
    Ok(invitation.into())
}

/// The project's pending invitations, one page at a time (owners only).
pub async fn list_for_project(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Invitation>, Option<String>)> {
    let mut store = ctx.read().await?;
    require_owner(cached_role(ctx, project_id, principal.user_id, Some(&mut *store)).await?)?;
    let paging = Paging::<Uuid>::new(&["invitations", &project_id.to_string()], cursor, limit)?;
    let rows = store
        .project_invitations(project_id, crate::db::now(), paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |i| i.id))
}

/// Revokes a pending invitation (owners only); it can no longer be accepted.
pub async fn revoke(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    invitation_id: Uuid,
) -> AppResult<()> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    work.lock_project(project_id).await?;
    require_owner(current_role(&mut *work, project_id, principal.user_id).await?)?;
    let invitation = work
        .invitation(invitation_id)
        .await?
        .filter(|i| i.project_id == project_id && i.status == "pending")
        .ok_or(AppError::NotFound("invitation"))?;
    work.close_invitation(invitation.id, "revoked", crate::db::now())
        .await?;
    work.record(Change {
        action: "invitation.revoked",
        entity_type: "invitation",
        entity_id: invitation.id,
        project_id: Some(project_id),
        summary: json!({ "email": invitation.email, "role": invitation.role }),
        resource: json!({ "id": invitation.id, "project_id": project_id, "status": "revoked" }),
    })
    .await?;
    work.commit().await
}

/// The pending invitations to the caller's address, one page at a time; none until the
/// address is verified.
pub async fn list_mine(
    ctx: &DomainContext,
    principal: &Principal,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Invitation>, Option<String>)> {
    let paging = Paging::<Uuid>::new(&["my-invitations"], cursor, limit)?;
    let rows = ctx
        .read()
        .await?
        .invitations_for_user(
            principal.user_id,
            crate::db::now(),
            paging.after,
            paging.fetch(),
        )
        .await?;
    Ok(paging.page(rows, |i| i.id))
}

/// Accepts an invitation to the caller's verified address: the caller becomes a member with
/// the invited role (a member already keeps their role), in one transaction, and every
/// instance sees the membership at once. Returns the project with the caller's role.
pub async fn accept(
    ctx: &DomainContext,
    principal: &Principal,
    invitation_id: Uuid,
) -> AppResult<Project> {
    let (mut work, invitation) = respond(ctx, principal, invitation_id).await?;
    let project_id = invitation.project_id;
    let now = crate::db::now();
    work.close_invitation(invitation.id, "accepted", now)
        .await?;
    let already_member = work
        .member_role(project_id, principal.user_id)
        .await?
        .is_some();
    if !already_member {
        work.insert_member(project_id, principal.user_id, &invitation.role, now)
            .await?;
        let member = work
            .member(project_id, principal.user_id)
            .await?
            .ok_or(AppError::NotFound("member"))?;
        work.record(Change {
            action: "member.added",
            entity_type: "member",
            entity_id: principal.user_id,
            project_id: Some(project_id),
            summary: json!({ "role": invitation.role, "via": "invitation" }),
            resource: resource(&Member::from(member)),
        })
        .await?;
    }
    work.record(Change {
        action: "invitation.accepted",
        entity_type: "invitation",
        entity_id: invitation.id,
        project_id: Some(project_id),
        summary: json!({
            "email": invitation.email,
            "role": invitation.role,
            "already_member": already_member,
        }),
        resource: json!({ "id": invitation.id, "project_id": project_id, "status": "accepted" }),
    })
    .await?;
    let project = work
        .project_for_member(project_id, principal.user_id)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    work.invalidate([keys::member(project_id, principal.user_id)]);
    work.commit().await?;
    Ok(Project::from(project))
}

/// Declines an invitation to the caller's verified address.
pub async fn decline(
    ctx: &DomainContext,
    principal: &Principal,
    invitation_id: Uuid,
) -> AppResult<()> {
    let (mut work, invitation) = respond(ctx, principal, invitation_id).await?;
    work.close_invitation(invitation.id, "declined", crate::db::now())
        .await?;
    work.record(Change {
        action: "invitation.declined",
        entity_type: "invitation",
        entity_id: invitation.id,
        project_id: Some(invitation.project_id),
        summary: json!({ "email": invitation.email, "role": invitation.role }),
        resource: json!({
            "id": invitation.id, "project_id": invitation.project_id, "status": "declined",
        }),
    })
    .await?;
    work.commit().await
}

/// Begins the invitee's answer: locks the project, then checks (uncached) that the invitation
/// is pending, unexpired and addressed to the caller's verified email; 404 otherwise.
async fn respond<'a>(
    ctx: &'a DomainContext,
    principal: &Principal,
    invitation_id: Uuid,
) -> AppResult<(crate::domain::UnitOfWork<'a>, InvitationRecord)> {
    let not_found = || AppError::NotFound("invitation");
    let project_id = ctx
        .read()
        .await?
        .invitation(invitation_id)
        .await?
        .ok_or_else(not_found)?
        .project_id;
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    work.lock_project(project_id).await?;
    let user = work
        .user_by_id(principal.user_id)
        .await?
        .ok_or_else(not_found)?;
    let now = crate::db::now();
    let invitation = work
        .invitation(invitation_id)
        .await?
        .filter(|i| {
            i.status == "pending"
                && i.expires_at > now
                && user.email_verified_at.is_some()
                && i.email == user.email.to_lowercase()
        })
        .ok_or_else(not_found)?;
    Ok((work, invitation))
}
