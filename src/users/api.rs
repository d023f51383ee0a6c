//! `/api/v1/users/me` and the admin user endpoints `/api/v1/admin/users`.

use poem_openapi::param::{Path, Query};
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::bearer::{AdminBearerAuth, BearerAuth};
use crate::auth::password;
use crate::error::{AppError, FieldError};
use crate::http::body::JsonBody;
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::responses::{Changed, Found, Page};
use crate::http::tags::Tag;
use crate::state::AppState;
use crate::users::model::{DISPLAY_NAME_MAX, Role, User, parse_email};
use crate::users::service::{self, ProfileChanges};
use crate::users::store::UserFilter;
use crate::validate::{FieldChecks, Validate};

crate::error_set! {
    /// Errors of reading the caller's profile.
    MeErrors = [401];
    /// Errors of updating the caller's profile.
    UpdateMeErrors = [400, 401, 409, 413, 415];
    /// Errors of listing users.
    ListUsersErrors = [400, 401, 403];
    /// Errors of an admin changing a user.
    AdminUpdateErrors = [400, 401, 403, 404, 409, 413, 415];
}

crate::page_type!(
    /// A page of users.
    UserPage,
    User
);

/// Changes to the caller's profile; omitted fields stay as they are.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// New display name (1 to 100 characters).
    #[oai(validator(min_length = 1, max_length = 100))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub display_name: Option<String>,
    /// New email address; needs `current_password`. Case does not matter.
    #[oai(validator(
        max_length = 254,
        pattern = r"^\s*[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\s*$"
    ))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub email: Option<String>,
    /// The current password; required with `email` or `new_password`.
    #[oai(validator(max_length = 128))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub current_password: Option<String>,
    /// New password (12 to 128 characters); needs `current_password`. Ends every session,
    /// this one included: log in again with the new password.
    #[oai(validator(min_length = 12, max_length = 128))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub new_password: Option<String>,
}

impl Validate for UpdateMeRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        if let Some(name) = &self.display_name {
            checks.line("display_name", name, 1, DISPLAY_NAME_MAX);
        }
        if let Some(Err(err)) = self.email.as_deref().map(|e| parse_email("email", e)) {
            checks.fail(&err.field, err.message);
        }
        if let Some(current) = &self.current_password {
            checks.text("current_password", current, 0, 128);
        }
        if let Some(new_password) = &self.new_password {
            password::check_new(&mut checks, "new_password", new_password);
        }
        checks.finish()
    }
}

/// An administrator's change to a user; omitted fields stay as they are.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdateUserRequest {
    /// New role.
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub role: Option<Role>,
    /// `true` disables the account and ends its sessions; `false` enables it again.
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub disabled: Option<bool>,
}

impl Validate for AdminUpdateUserRequest {
    fn validate(&self) -> Vec<FieldError> {
        Vec::new()
    }
}

/// The caller's profile, and user administration.
pub struct UsersApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1")]
impl UsersApi {
    /// Get my profile
    ///
    /// Returns the authenticated user.
    #[oai(
        path = "/users/me",
        method = "get",
        operation_id = "getMe",
        tag = "Tag::Users"
    )]
    async fn get_me(&self, auth: BearerAuth) -> Result<Found<User>, ApiError<MeErrors>> {
        Ok(Found(service::me(&self.state.domain, &auth.0).await?))
    }

    /// Update my profile
    ///
    /// Changes the display name, email or password. Email and password changes need
    /// `current_password`; a password change ends every session of the user. A new email is
    /// unverified (`email_verified: false`) until the link mailed to it is used.
    #[oai(
        path = "/users/me",
        method = "patch",
        operation_id = "updateMe",
        tag = "Tag::Users"
    )]
    async fn update_me(
        &self,
        auth: BearerAuth,
        body: JsonBody<UpdateMeRequest>,
    ) -> Result<Changed<User>, ApiError<UpdateMeErrors>> {
        let body = body.0;
        let changes = ProfileChanges {
            display_name: body.display_name.map(|n| n.trim().to_owned()),
            email: body
                .email
                .map(|e| parse_email("email", &e))
                .transpose()
                .map_err(|e| AppError::Validation(vec![e]))?,
            current_password: body.current_password,
            new_password: body.new_password,
        };
        Ok(Changed(
            service::update_me(
                &self.state.domain,
                &self.state.auth.verifier,
                &auth.0,
                changes,
            )
            .await?,
        ))
    }

    /// List users (admin)
    ///
    /// Administrators only (`adminBearerAuth`; others get 403). Users in creation order,
    /// filtered by text (email or display name), role and status.
    #[oai(
        path = "/admin/users",
        method = "get",
        operation_id = "listUsers",
        tag = "Tag::Admin"
    )]
    async fn list_users(
        &self,
        auth: AdminBearerAuth,
        /// Substring of the email or display name (case-insensitive).
        #[oai(validator(min_length = 1, max_length = 100))]
        q: Query<Option<String>>,
        /// Only users with this role.
        role: Query<Option<Role>>,
        /// Only disabled (`true`) or enabled (`false`) users.
        disabled: Query<Option<bool>>,
        /// Items per page (1 to 100, default 20).
        #[oai(
            default = "crate::http::pagination::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Page<UserPage>, ApiError<ListUsersErrors>> {
        let filter = UserFilter {
            text: q.0,
            role: role.0,
            disabled: disabled.0,
        };
        let limit = pagination::limit(Some(limit.0));
        let (items, next_cursor) = service::list(
            &self.state.domain,
            &auth.0,
            filter,
            cursor.0.as_deref(),
            limit,
        )
        .await?;
        Ok(Page(UserPage { items, next_cursor }))
    }

    /// Change a user (admin)
    ///
    /// Administrators only (`adminBearerAuth`; others get 403). Changes a user's role or
    /// disabled status. Disabling ends the user's sessions at once. Administrators cannot change
    /// their own role or status.
    #[oai(
        path = "/admin/users/:user_id",
        method = "patch",
        operation_id = "adminUpdateUser",
        tag = "Tag::Admin"
    )]
    async fn admin_update_user(
        &self,
        auth: AdminBearerAuth,
        /// The user to change.
        user_id: Path<Uuid>,
        body: JsonBody<AdminUpdateUserRequest>,
    ) -> Result<Changed<User>, ApiError<AdminUpdateErrors>> {
        let body = body.0;
        let user = service::admin_update(
            &self.state.domain,
            &auth.0,
            user_id.0,
            body.role,
            body.disabled,
        )
        .await?;
        Ok(Changed(user))
    }
}
