//! `/api/v1/tasks/{task_id}/activity`.

use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use crate::activity::model::ActivityEntry;
use crate::activity::service;
use crate::auth::bearer::BearerAuth;
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::tags::Tag;
use crate::state::AppState;

crate::error_set! {
    /// Errors of reading a task's activity.
    ActivityErrors = [400, 401, 404];
}

crate::page_type!(
    /// A page of a task's activity, newest first.
    ActivityPage,
    ActivityEntry
);

/// Task activity.
pub struct ActivityApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Tasks")]
impl ActivityApi {
    /// Read a task's activity
    ///
    /// What changed on the task, newest first: its creation, then one entry per changed field
    /// with the old and the new value, who changed it, when, and the request id of the change.
    /// Any member of the task's project may read it (viewers included).
    #[oai(
        path = "/tasks/:task_id/activity",
        method = "get",
        operation_id = "taskActivity"
    )]
    async fn activity(
        &self,
        auth: BearerAuth,
        /// The task.
        task_id: Path<Uuid>,
        /// Items per page (1 to 100, default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<ActivityPage>, ApiError<ActivityErrors>> {
        let (items, next_cursor) = service::list(
            &self.state.domain,
            &auth.0,
            task_id.0,
            cursor.0.as_deref(),
            pagination::limit(limit.0),
        )
        .await?;
        Ok(Json(ActivityPage { items, next_cursor }))
    }
}
