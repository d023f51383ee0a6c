//! `/api/v1/projects/{project_id}/invitations`, `/api/v1/users/me/invitations` and
//! `/api/v1/invitations/{invitation_id}/accept|decline`.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::bearer::BearerAuth;
use crate::error::{AppError, FieldError};
use crate::http::body::JsonBody;
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::responses::{Created, NoContent, ResourcePath};
use crate::http::tags::Tag;
use crate::invitations::model::Invitation;
use crate::invitations::service;
use crate::projects::model::{Project, ProjectRole};
use crate::state::AppState;
use crate::users::model::parse_email;
use crate::validate::{FieldChecks, Validate};

crate::error_set! {
    /// Errors of inviting.
    CreateInvitationErrors = [400, 401, 403, 404, 409, 413, 415];
    /// Errors of listing a project's invitations.
    ProjectInvitationsErrors = [400, 401, 403, 404];
    /// Errors of revoking.
    RevokeInvitationErrors = [400, 401, 403, 404];
    /// Errors of listing my invitations.
    MyInvitationsErrors = [400, 401];
    /// Errors of accepting or declining.
    RespondInvitationErrors = [400, 401, 404];
}

crate::page_type!(
    /// A page of invitations.
    InvitationPage,
    Invitation
);

/// An invitation to make.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    /// The address to invite; case does not matter. It need not have an account yet.
    #[oai(validator(
        max_length = 254,
        pattern = r"^\s*[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\s*$"
    ))]
    pub email: String,
    /// The role the invitee gets on accepting.
    pub role: ProjectRole,
}

impl Validate for CreateInvitationRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        if let Err(err) = parse_email("email", &self.email) {
            checks.fail(&err.field, err.message);
        }
        checks.finish()
    }
}

/// Invitations by email.
pub struct InvitationsApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Invitations")]
impl InvitationsApi {
    /// Invite an email address
    ///
    /// Invites an address into the project with a role. Owners only. The answer is the same
    /// whether or not the address has an account; an address without one sees the invitation
    /// once it registers and verifies its email. 409 (naming `email`) when the address already
    /// has a pending invitation to the project or belongs to a member.
    #[oai(
        path = "/projects/:project_id/invitations",
        method = "post",
        operation_id = "createInvitation"
    )]
    async fn create(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        body: JsonBody<CreateInvitationRequest>,
    ) -> Result<Created<Invitation>, ApiError<CreateInvitationErrors>> {
        let email =
            parse_email("email", &body.0.email).map_err(|e| AppError::Validation(vec![e]))?;
        let invitation = service::create(
            &self.state.domain,
            self.state.config.invitation_ttl,
            &auth.0,
            project_id.0,
            email,
            body.0.role,
        )
        .await?;
        let location = format!("/api/v1/projects/{}/invitations", project_id.0);
        Ok(Created::Created(Json(invitation), ResourcePath(location)))
    }

    /// List a project's invitations
    ///
    /// The project's pending, unexpired invitations in creation order. Owners only.
    #[oai(
        path = "/projects/:project_id/invitations",
        method = "get",
        operation_id = "listProjectInvitations"
    )]
    async fn list_for_project(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// Items per page (1 to 100, default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<InvitationPage>, ApiError<ProjectInvitationsErrors>> {
        let (items, next_cursor) = service::list_for_project(
            &self.state.domain,
            &auth.0,
            project_id.0,
            cursor.0.as_deref(),
            pagination::limit(limit.0),
        )
        .await?;
        Ok(Json(InvitationPage { items, next_cursor }))
    }

    /// Revoke an invitation
    ///
    /// Revokes a pending invitation; it can no longer be accepted. Owners only.
    #[oai(
        path = "/projects/:project_id/invitations/:invitation_id",
        method = "delete",
        operation_id = "revokeInvitation"
    )]
    async fn revoke(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// The invitation.
        invitation_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError<RevokeInvitationErrors>> {
        service::revoke(&self.state.domain, &auth.0, project_id.0, invitation_id.0).await?;
        Ok(NoContent::NoContent)
    }

    /// List my invitations
    ///
    /// Pending, unexpired invitations addressed to the caller's email, in creation order;
    /// always empty until that email is verified.
    #[oai(
        path = "/users/me/invitations",
        method = "get",
        operation_id = "listMyInvitations"
    )]
    async fn list_mine(
        &self,
        auth: BearerAuth,
        /// Items per page (1 to 100, default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<InvitationPage>, ApiError<MyInvitationsErrors>> {
        let (items, next_cursor) = service::list_mine(
            &self.state.domain,
            &auth.0,
            cursor.0.as_deref(),
            pagination::limit(limit.0),
        )
        .await?;
        Ok(Json(InvitationPage { items, next_cursor }))
    }

    /// Accept an invitation
    ///
    /// The caller becomes a member of the project with the invited role (a member already
    /// keeps their role) and gets the project back. Only for invitations addressed to the
    /// caller's verified email; to anyone else the invitation does not exist (404).
    #[oai(
        path = "/invitations/:invitation_id/accept",
        method = "post",
        operation_id = "acceptInvitation"
    )]
    async fn accept(
        &self,
        auth: BearerAuth,
        /// The invitation.
        invitation_id: Path<Uuid>,
    ) -> Result<Json<Project>, ApiError<RespondInvitationErrors>> {
        Ok(Json(
            service::accept(&self.state.domain, &auth.0, invitation_id.0).await?,
        ))
    }

    /// Decline an invitation
    ///
    /// Declines an invitation addressed to the caller's verified email; 404 for anyone else.
    #[oai(
        path = "/invitations/:invitation_id/decline",
        method = "post",
        operation_id = "declineInvitation"
    )]
    async fn decline(
        &self,
        auth: BearerAuth,
        /// The invitation.
        invitation_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError<RespondInvitationErrors>> {
        service::decline(&self.state.domain, &auth.0, invitation_id.0).await?;
        Ok(NoContent::NoContent)
    }
}
