//! `/api/v1/tasks/{task_id}/comments` and `/api/v1/comments/{comment_id}`.

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use crate::auth::bearer::BearerAuth;
use crate::comments::model::{Comment, CommentRequest};
use crate::comments::service;
use crate::etag;
use crate::http::body::JsonBody;
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::responses::{EntityTag, NoContent, ResourcePath};
use crate::http::tags::Tag;
use crate::state::AppState;

crate::error_set! {
    /// Errors of writing a comment.
    CreateCommentErrors = [400, 401, 403, 404, 413, 415];
    /// Errors of listing or reading comments.
    ReadCommentErrors = [400, 401, 404];
    /// Errors of editing a comment.
    UpdateCommentErrors = [400, 401, 403, 404, 412, 413, 415];
    /// Errors of deleting a comment.
    DeleteCommentErrors = [400, 401, 403, 404, 412];
}

crate::page_type!(
    /// A page of comments, oldest first.
    CommentPage,
    Comment
);

/// A written comment.
#[derive(ApiResponse)]
pub enum CommentCreated {
    /// Created. `Location` is the comment's URL; `ETag` identifies this version.
    #[oai(status = 201)]
    Created(
        Json<Comment>,
        #[oai(header = "Location")] ResourcePath,
        #[oai(header = "ETag")] EntityTag,
    ),
}

/// A comment read or edited.
#[derive(ApiResponse)]
pub enum CommentRead {
    /// The comment; `ETag` identifies this version (send it as `If-Match` to edit or delete).
    #[oai(status = 200)]
    Ok(Json<Comment>, #[oai(header = "ETag")] EntityTag),
}

/// Comments on tasks.
pub struct CommentsApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Comments")]
impl CommentsApi {
    /// Comment on a task
    ///
    /// Writes a comment (Markdown, stored as sent). Owners and members only; viewers get 403.
    /// The task's `comment_count` and `version` (its `ETag`) change.
    #[oai(
        path = "/tasks/:task_id/comments",
        method = "post",
        operation_id = "createComment"
    )]
    async fn create(
        &self,
        auth: BearerAuth,
        /// The task.
        task_id: Path<Uuid>,
        body: JsonBody<CommentRequest>,
    ) -> Result<CommentCreated, ApiError<CreateCommentErrors>> {
        let body = body.0.body.into_inner();
        let comment = service::create(&self.state.domain, &auth.0, task_id.0, body).await?;
        let location = format!("/api/v1/comments/{}", comment.id);
        let tag = etag::for_version(comment.version);
        Ok(CommentCreated::Created(
            Json(comment),
            ResourcePath(location),
            EntityTag(tag),
        ))
    }

    /// List a task's comments
    ///
    /// The task's comments, oldest first, one page at a time. Any member of the project may
    /// read them.
    #[oai(
        path = "/tasks/:task_id/comments",
        method = "get",
        operation_id = "listComments"
    )]
    async fn list(
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
    ) -> Result<Json<CommentPage>, ApiError<ReadCommentErrors>> {
        let (items, next_cursor) = service::list(
            &self.state.domain,
            &auth.0,
            task_id.0,
            cursor.0.as_deref(),
            pagination::limit(limit.0),
        )
        .await?;
        Ok(Json(CommentPage { items, next_cursor }))
    }

    /// Get a comment
    ///
    /// Any member of the project of the comment's task may read it.
    #[oai(
        path = "/comments/:comment_id",
        method = "get",
        operation_id = "getComment"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        /// The comment.
        comment_id: Path<Uuid>,
    ) -> Result<CommentRead, ApiError<ReadCommentErrors>> {
        let comment = service::get(&self.state.domain, &auth.0, comment_id.0).await?;
        let tag = etag::for_version(comment.version);
        Ok(CommentRead::Ok(Json(comment), EntityTag(tag)))
    }

    /// Edit a comment
    ///
    /// Replaces the text. Only the comment's author, while an owner or member of the project.
    /// Send the `ETag` you read as `If-Match` to refuse the change (412) if it was edited since.
    #[oai(
        path = "/comments/:comment_id",
        method = "patch",
        operation_id = "updateComment"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        /// The comment.
        comment_id: Path<Uuid>,
        /// The ETag the change is based on.
        #[oai(name = "If-Match", validator(max_length = 1024))]
        if_match: Header<Option<String>>,
        body: JsonBody<CommentRequest>,
    ) -> Result<CommentRead, ApiError<UpdateCommentErrors>> {
        let body = body.0.body.into_inner();
        let comment = service::update(
            &self.state.domain,
            &auth.0,
            comment_id.0,
            if_match.0.as_deref(),
            body,
        )
        .await?;
        let tag = etag::for_version(comment.version);
        Ok(CommentRead::Ok(Json(comment), EntityTag(tag)))
    }

    /// Delete a comment
    ///
    /// Deletes a comment: its author (an owner or member), or any owner of the project. With
    /// `If-Match`, a stale version gets 412. The task's `comment_count` and `version` change.
    #[oai(
        path = "/comments/:comment_id",
        method = "delete",
        operation_id = "deleteComment"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        /// The comment.
        comment_id: Path<Uuid>,
        /// The ETag the deletion is based on.
        #[oai(name = "If-Match", validator(max_length = 1024))]
        if_match: Header<Option<String>>,
    ) -> Result<NoContent, ApiError<DeleteCommentErrors>> {
        service::delete(
            &self.state.domain,
            &auth.0,
            comment_id.0,
            if_match.0.as_deref(),
        )
        .await?;
        Ok(NoContent::NoContent)
    }
}
