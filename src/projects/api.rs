//! `/api/v1/projects`: projects and their members.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::bearer::BearerAuth;
use crate::error::FieldError;
use crate::http::body::JsonBody;
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::responses::{Changed, Created, Found, NoContent, Page, ResourcePath};
use crate::http::tags::Tag;
use crate::idempotency::IdempotencyKey;
use crate::projects::model::{DESCRIPTION_MAX, Member, NAME_MAX, Project, ProjectRole};
use crate::projects::service;
use crate::state::AppState;
use crate::validate::{FieldChecks, Validate};

crate::error_set! {
    /// Errors of creating a project.
    CreateProjectErrors = [400, 401, 413, 415, 422];
    /// Errors of listing.
    ListErrors = [400, 401, 404];
    /// Errors of reading one project.
    ReadProjectErrors = [400, 401, 404];
    /// Errors of changes that only owners may make.
    OwnerWriteErrors = [400, 401, 403, 404, 409, 413, 415];
    /// Errors of deletions that only owners may make (no body, so no 413 or 415).
    OwnerDeleteErrors = [400, 401, 403, 404, 409];
}

crate::page_type!(
    /// A page of projects.
    ProjectPage,
    Project
);
crate::page_type!(
    /// A page of project members.
    MemberPage,
    Member
);

/// A new project.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// Name (1 to 100 characters, one line).
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// Description (up to 2000 characters).
    #[oai(validator(max_length = 2000))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub description: Option<String>,
}

impl Validate for CreateProjectRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        checks.line("name", &self.name, 1, NAME_MAX);
        if let Some(description) = &self.description {
            checks.text("description", description, 0, DESCRIPTION_MAX);
        }
        checks.finish()
    }
}

/// Changes to a project; omitted fields stay as they are.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    /// New name (1 to 100 characters, one line).
    #[oai(validator(min_length = 1, max_length = 100))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub name: Option<String>,
    /// New description (up to 2000 characters).
    #[oai(validator(max_length = 2000))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub description: Option<String>,
}

impl Validate for UpdateProjectRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        if let Some(name) = &self.name {
            checks.line("name", name, 1, NAME_MAX);
        }
        if let Some(description) = &self.description {
            checks.text("description", description, 0, DESCRIPTION_MAX);
        }
        checks.finish()
    }
}

/// A member's role.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct PutMemberRequest {
    /// The role to give.
    pub role: ProjectRole,
}

impl Validate for PutMemberRequest {
    fn validate(&self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// Projects and members.
pub struct ProjectsApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1/projects", tag = "Tag::Projects")]
impl ProjectsApi {
    /// Create a project
    ///
    /// Creates a project; the caller becomes its owner. With `Idempotency-Key`, a retry of the
    /// same request within 24 hours returns the first answer instead of a second project.
    #[oai(path = "/", method = "post", operation_id = "createProject")]
    async fn create(
        &self,
        auth: BearerAuth,
        /// Makes retries safe: a repeat with this key replays the first answer (24 hours);
        /// the same key with a different request is a 422.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<CreateProjectRequest>,
    ) -> Result<Created<Project>, ApiError<CreateProjectErrors>> {
        let key = IdempotencyKey::from_request(
            auth.0.user_id,
            idempotency_key.0.as_deref(),
            "createProject",
            "",
            body.raw(),
        )?;
        let body = body.0;
        let description = body.description.unwrap_or_default();
        let project = service::create(
            &self.state.domain,
            &auth.0,
            body.name.trim().to_owned(),
            description,
            key.as_ref(),
        )
        .await?;
        let location = format!("/api/v1/projects/{}", project.id);
        Ok(Created::Created(Json(project), ResourcePath(location)))
    }

    /// List my projects
    ///
    /// The projects the caller is a member of, in creation order, with the caller's role.
    #[oai(path = "/", method = "get", operation_id = "listProjects")]
    async fn list(
        &self,
        auth: BearerAuth,
        /// Items per page (1 to 100, default 20).
        #[oai(
            default = "crate::http::pagination::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Page<ProjectPage>, ApiError<ListErrors>> {
        let limit = pagination::limit(Some(limit.0));
        let (items, next_cursor) =
            service::list_mine(&self.state.domain, &auth.0, cursor.0.as_deref(), limit).await?;
        Ok(Page(ProjectPage { items, next_cursor }))
    }

    /// Get a project
    ///
    /// Any member may read a project; to anyone else it does not exist (404).
    #[oai(path = "/:project_id", method = "get", operation_id = "getProject")]
    async fn get(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
    ) -> Result<Found<Project>, ApiError<ReadProjectErrors>> {
        Ok(Found(
            service::get(&self.state.domain, &auth.0, project_id.0).await?,
        ))
    }

    /// Update a project
    ///
    /// Renames or re-describes a project. Owners only.
    #[oai(
        path = "/:project_id",
        method = "patch",
        operation_id = "updateProject"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        body: JsonBody<UpdateProjectRequest>,
    ) -> Result<Changed<Project>, ApiError<OwnerWriteErrors>> {
        let body = body.0;
        let name = body.name.map(|n| n.trim().to_owned());
        let project = service::update(
            &self.state.domain,
            &auth.0,
            project_id.0,
            name,
            body.description,
        )
        .await?;
        Ok(Changed(project))
    }

    /// Delete a project
    ///
    /// Deletes the project with all its tasks. Owners only. The audit log keeps an entry.
    #[oai(
        path = "/:project_id",
        method = "delete",
        operation_id = "deleteProject"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError<OwnerDeleteErrors>> {
        service::delete(&self.state.domain, &auth.0, project_id.0).await?;
        Ok(NoContent::NoContent)
    }

    /// List members
    ///
    /// The project's members with their roles. Any member may read them.
    #[oai(
        path = "/:project_id/members",
        method = "get",
        operation_id = "listMembers"
    )]
    async fn members(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// Items per page (1 to 100, default 20).
        #[oai(
            default = "crate::http::pagination::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Page<MemberPage>, ApiError<ListErrors>> {
        let limit = pagination::limit(Some(limit.0));
        let (items, next_cursor) = service::members(
            &self.state.domain,
            &auth.0,
            project_id.0,
            cursor.0.as_deref(),
            limit,
        )
        .await?;
        Ok(Page(MemberPage { items, next_cursor }))
    }

    /// Add a member or change a role
    ///
    /// Adds the user with the given role, or changes their role. Owners only. A project always
    /// keeps at least one owner (409).
    #[oai(
        path = "/:project_id/members/:user_id",
        method = "put",
        operation_id = "putMember"
    )]
    async fn put_member(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// The user to add or change.
        user_id: Path<Uuid>,
        body: JsonBody<PutMemberRequest>,
    ) -> Result<Changed<Member>, ApiError<OwnerWriteErrors>> {
        let member = service::put_member(
            &self.state.domain,
            &auth.0,
            project_id.0,
            user_id.0,
            body.0.role,
        )
        .await?;
        Ok(Changed(member))
    }

    /// Remove a member
    ///
    /// Removes a member; their tasks in the project become unassigned. Owners may remove anyone,
    /// members may remove themselves. The last owner cannot be removed (409).
    #[oai(
        path = "/:project_id/members/:user_id",
        method = "delete",
        operation_id = "removeMember"
    )]
    async fn remove_member(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// The member to remove.
        user_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError<OwnerDeleteErrors>> {
        service::remove_member(&self.state.domain, &auth.0, project_id.0, user_id.0).await?;
        Ok(NoContent::NoContent)
    }
}
