//! `/api/v1/projects/{project_id}/audit` (owners) and `/api/v1/admin/audit` (administrators).

use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use uuid::Uuid;

use crate::audit::model::AuditEntry;
use crate::audit::service;
use crate::audit::store::AuditFilter;
use crate::auth::bearer::{AdminBearerAuth, BearerAuth};
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::responses::Page;
use crate::http::tags::Tag;
use crate::state::AppState;

crate::error_set! {
    /// Errors of reading an audit log.
    AuditErrors = [400, 401, 403, 404];
}

crate::page_type!(
    /// A page of audit entries, newest first.
    AuditPage,
    AuditEntry
);

/// Audit logs.
pub struct AuditApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1")]
impl AuditApi {
    /// Read a project's audit log
    ///
    /// Changes to the project, its members and its tasks, newest first. Owners only.
    #[oai(
        path = "/projects/:project_id/audit",
        method = "get",
        operation_id = "projectAudit",
        tag = "Tag::Audit"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn project_audit(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// Only this action (such as `task.updated`).
        #[oai(validator(min_length = 1, max_length = 64))]
        action: Query<Option<String>>,
        /// Only this entity kind (`project`, `member` or `task`).
        #[oai(validator(min_length = 1, max_length = 32))]
        entity_type: Query<Option<String>>,
        /// Items per page (1 to 100, default 20).
        #[oai(
            default = "crate::http::pagination::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Page<AuditPage>, ApiError<AuditErrors>> {
        let filter = AuditFilter {
            action: action.0,
            entity_type: entity_type.0,
            ..AuditFilter::default()
        };
        let (items, next_cursor) = service::project_log(
            &self.state.domain,
            &auth.0,
            project_id.0,
            filter,
            cursor.0.as_deref(),
            pagination::limit(Some(limit.0)),
        )
        .await?;
        Ok(Page(AuditPage { items, next_cursor }))
    }

    /// Read the whole audit log (admin)
    ///
    /// Administrators only (`adminBearerAuth`; others get 403). Every change, newest first,
    /// filtered by project, actor, action and entity kind.
    #[oai(
        path = "/admin/audit",
        method = "get",
        operation_id = "adminAudit",
        tag = "Tag::Admin"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn admin_audit(
        &self,
        auth: AdminBearerAuth,
        /// Only this project's entries.
        project_id: Query<Option<Uuid>>,
        /// Only changes made by this user.
        actor_id: Query<Option<Uuid>>,
        /// Only this action (such as `user.disabled`).
        #[oai(validator(min_length = 1, max_length = 64))]
        action: Query<Option<String>>,
        /// Only this entity kind (`user`, `project`, `member` or `task`).
        #[oai(validator(min_length = 1, max_length = 32))]
        entity_type: Query<Option<String>>,
        /// Items per page (1 to 100, default 20).
        #[oai(
            default = "crate::http::pagination::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Page<AuditPage>, ApiError<AuditErrors>> {
        let filter = AuditFilter {
            project_id: project_id.0,
            actor_id: actor_id.0,
            action: action.0,
            entity_type: entity_type.0,
        };
        let (items, next_cursor) = service::whole_log(
            &self.state.domain,
            &auth.0,
            filter,
            cursor.0.as_deref(),
            pagination::limit(Some(limit.0)),
        )
        .await?;
        Ok(Page(AuditPage { items, next_cursor }))
    }
}
