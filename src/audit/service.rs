//! Who may read which audit log: a project's owners read its log, administrators read all.

use uuid::Uuid;

use crate::audit::model::AuditEntry;
use crate::audit::store::AuditFilter;
use crate::auth::Principal;
use crate::domain::DomainContext;
use crate::error::{AppError, AppResult};
use crate::paging::Paging;
use crate::projects::model::ProjectRole;
use crate::projects::service::cached_role;
use crate::users::service::require_admin;

/// One page of audit entries, newest first, and the cursor of the next.
pub type AuditPage = (Vec<AuditEntry>, Option<String>);

/// A project's log (owners only; non-members get 404). `filter.project_id` is set here.
pub async fn project_log(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    filter: AuditFilter,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<AuditPage> {
    match cached_role(ctx, project_id, principal.user_id, None).await? {
        ProjectRole::Owner => {}
        _ => {
            return Err(AppError::Forbidden(
                "only project owners may read its audit log",
            ));
        }
    }
    let filter = AuditFilter {
        project_id: Some(project_id),
        ..filter
    };
    page(ctx, filter, cursor, limit).await
}

/// The whole log (administrators only).
pub async fn whole_log(
    ctx: &DomainContext,
    principal: &Principal,
    filter: AuditFilter,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<AuditPage> {
    require_admin(principal)?;
    page(ctx, filter, cursor, limit).await
}

async fn page(
    ctx: &DomainContext,
    filter: AuditFilter,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<AuditPage> {
    let paging = Paging::<Uuid>::new(
        &[
            "audit",
            &format!("{:?}", filter.project_id),
            &format!("{:?}", filter.actor_id),
            filter.action.as_deref().unwrap_or(""),
            filter.entity_type.as_deref().unwrap_or(""),
        ],
        cursor,
        limit,
    )?;
    let rows = ctx
        .read()
        .await?
        .list_audit(&filter, paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |e| e.id))
}
