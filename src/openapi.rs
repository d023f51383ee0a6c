//! The OpenAPI document: every API area combined into one service, with tag descriptions.

use poem_openapi::{OpenApiService, Tags};

use crate::app::AppState;

/// The tags that group operations in the document and in Swagger UI.
#[derive(Tags)]
pub enum Tag {
    /// Registration, login, token refresh and logout.
    Auth,
    /// The caller's own profile.
    Users,
    /// Projects the caller belongs to, and their members.
    Projects,
    /// Tasks inside projects: filters, sorting, cursor pagination, ETags.
    Tasks,
    /// The audit log of changes.
    Audit,
    /// Administration: users and the whole audit log (administrators only).
    Admin,
    /// Liveness and readiness.
    Health,
}

/// The API areas, as one type.
pub type Apis = (
    crate::health::HealthApi,
    crate::auth::api::AuthApi,
    crate::users::api::UsersApi,
    crate::projects::api::ProjectsApi,
    crate::tasks::api::TasksApi,
    crate::audit::api::AuditApi,
);

/// Builds the OpenAPI service (routes plus document).
pub fn service(state: AppState) -> OpenApiService<Apis, ()> {
    let apis = (
        crate::health::HealthApi {
            state: state.clone(),
        },
        crate::auth::api::AuthApi {
            state: state.clone(),
        },
        crate::users::api::UsersApi {
            state: state.clone(),
        },
        crate::projects::api::ProjectsApi {
            state: state.clone(),
        },
        crate::tasks::api::TasksApi {
            state: state.clone(),
        },
        crate::audit::api::AuditApi { state },
    );
    OpenApiService::new(apis, "Tasklight API", env!("CARGO_PKG_VERSION"))
        .description(
            "Task-manager REST API. Errors are `application/problem+json` with `type`, `title`, \
             `status`, `detail`, `request_id` and, for invalid input, `errors` naming each field. \
             Lists return `{ items, next_cursor }`; pass `next_cursor` back as `cursor`.",
        )
        .server("/")
}
