//! Who may read a task's activity: every member of its project (viewers included); others get
//! 404, as for the task itself.

use uuid::Uuid;

use crate::activity::model::ActivityEntry;
use crate::auth::Principal;
use crate::domain::DomainContext;
use crate::error::AppResult;
use crate::paging::Paging;

/// One page of activity entries, newest first, and the cursor of the next.
pub type ActivityPage = (Vec<ActivityEntry>, Option<String>);

/// One page of a task's activity, newest first.
pub async fn list(
    ctx: &DomainContext,
    principal: &Principal,
    task_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<ActivityPage> {
    // The task's own read rule: 404 unless the caller is a member of its project now.
    crate::tasks::service::get(ctx, principal, task_id).await?;
    let paging = Paging::<Uuid>::new(&["activity", &task_id.to_string()], cursor, limit)?;
    let rows = ctx
        .read_stale(principal.user_id)
        .await?
        .list_activity(task_id, paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |e| e.id))
}
