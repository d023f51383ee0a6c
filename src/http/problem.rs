//! The one place that turns errors into HTTP: `application/problem+json` (RFC 9457) bodies with
//! `type`, `title`, `status`, `detail`, `request_id`, and field errors for invalid input.
//!
//! Handlers return `Result<_, ApiError<Set>>`, where `Set` lists the statuses that operation can
//! answer with, so the OpenAPI document states them. Errors raised outside handlers (unknown
//! route, wrong method, body too large, unparsable parameters, a panic) go through
//! [`render_poem_error`], so every error a client sees has the same shape.

use std::marker::PhantomData;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

use crate::error::{AppError, FieldError};
use crate::http::request_id;
use crate::ratelimit::Decision;
use crate::telemetry::error_report::ErrorReport;

/// The media type of every error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Longest `detail` (characters); longer ones are cut, ending in `…`.
const DETAIL_MAX: usize = 2000;
/// Longest `errors[].field` and `errors[].message` (characters); longer ones are cut.
const FIELD_MAX: usize = 200;
const MESSAGE_MAX: usize = 1000;
/// Most field errors in one answer; the rest are left out.
const ERRORS_MAX: usize = 50;

/// An error response (RFC 9457 problem details).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Problem {
    /// A URI that identifies the kind of problem (`urn:tasklight:problem:<kind>`).
    #[oai(
        rename = "type",
        validator(max_length = 100, pattern = "^urn:tasklight:problem:[a-z0-9-]+$")
    )]
    pub kind: String,
    /// A short summary of the kind of problem (the status's reason phrase).
    #[oai(validator(max_length = 100))]
    pub title: String,
    /// The HTTP status code.
    #[oai(validator(minimum(value = "400"), maximum(value = "599")))]
    pub status: u16,
    /// What went wrong with this request, in words a developer can act on (at most 2000
    /// characters).
    #[oai(validator(max_length = 2000))]
    pub detail: String,
    /// The request id (also in the `X-Request-Id` header); quote it when reporting a problem.
    #[oai(validator(max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$"))]
    pub request_id: String,
    /// The invalid fields, when the input was invalid (at most 50).
    #[oai(skip_serializing_if_is_none, validator(max_items = 50))]
    pub errors: Option<Vec<ProblemField>>,
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        Self {
            kind: "urn:tasklight:problem:validation".to_owned(),
            title: "Bad Request".to_owned(),
            status: 400,
            detail: "title: must be 1 to 200 characters".to_owned(),
            request_id: "0194f0aa-2b1c-7d3e-8f40-5a6b7c8d9e0f".to_owned(),
            errors: Some(vec![ProblemField {
                field: "title".to_owned(),
                message: "must be 1 to 200 characters".to_owned(),
            }]),
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, Object)]
pub struct ProblemField {
    /// The field: a JSON path in the body (`tags[2]`), or a parameter or header name (`limit`).
    #[oai(validator(max_length = 200))]
    pub field: String,
    /// Why the value was refused.
    #[oai(validator(max_length = 1000))]
    pub message: String,
}

/// `text`, cut to at most `max` characters (the last one `…` when cut).
fn bounded(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max.saturating_sub(1))
        && text[cut..].chars().nth(1).is_some()
    {
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl Problem {
    /// A problem for `status`, with the request id of the current request.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:tasklight:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: bounded(detail.into(), DETAIL_MAX),
            request_id: request_id::current(),
            errors: None,
        }
    }

    /// Adds field errors.
    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.errors = Some(
            fields
                .into_iter()
                .take(ERRORS_MAX)
                .map(|f| ProblemField {
                    field: bounded(f.field, FIELD_MAX),
                    message: bounded(f.message, MESSAGE_MAX),
                })
                .collect(),
        );
        self
    }

    /// Renders the response, with `Content-Type: application/problem+json`.
    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_json().map(|v| v.to_string()).unwrap_or_default();
        let mut response = Response::builder()
            .status(status)
            .content_type(CONTENT_TYPE)
            .body(body);
        match status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tasklight\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// Renders a domain error. Internal errors are logged with their whole cause chain and answered
/// with a generic message.
pub fn render(error: &AppError) -> Response {
    let problem = match error {
        AppError::Validation(fields) => {
            let detail = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            Problem::new(StatusCode::BAD_REQUEST, "validation", detail).with_fields(fields.clone())
        }
        AppError::Unauthorized(detail) => {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", *detail)
        }
        AppError::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "forbidden", *detail),
        AppError::NotFound(_) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", error.to_string())
        }
        AppError::Conflict(detail) => {
            Problem::new(StatusCode::CONFLICT, "conflict", detail.clone())
        }
        AppError::PreconditionFailed => Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            error.to_string(),
        ),
        AppError::Unprocessable(detail) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            *detail,
        ),
        AppError::RateLimited(decision) => {
            return too_many_requests(decision);
        }
        AppError::TooMany(detail) => {
            let mut response =
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many", *detail).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
        AppError::Unavailable(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
        AppError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "internal error");
            // The cause chain, without values, for the error tracker (see `observe`).
            let mut response = internal_problem().into_response();
            response.set_data(std::sync::Arc::new(ErrorReport::of(cause)));
            return response;
        }
    };
    problem.into_response()
}

/// The 429 problem for a refused request.
pub fn too_many_requests(decision: &Decision) -> Response {
    let retry = decision.retry_after_secs();
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!(
            "rate limit `{}` exceeded ({} requests per {} s); retry after {retry} s",
            decision.policy.name(),
            decision.quota.limit,
            decision.quota.window.as_secs()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    response
}

fn internal_problem() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "an unexpected error occurred; it has been logged with this request id",
    )
}

/// The statuses an operation can answer with besides success; always includes 414, 429, 431,
/// 500 and 503.
pub trait ErrorSet: Send + Sync + 'static {
    /// The documented error statuses.
    const STATUSES: &'static [u16];
}

/// Declares an [`ErrorSet`]: `error_set!(ReadTask = [401, 404]);` (414, 429, 431, 500 and 503
/// are added: every operation that uses one has the request-head limits and is rate-limited).
#[macro_export]
macro_rules! error_set {
    ($($(#[$meta:meta])* $name:ident = [$($status:literal),*];)+) => {
        $(
            $(#[$meta])*
            pub struct $name;
            impl $crate::http::problem::ErrorSet for $name {
                const STATUSES: &'static [u16] = &[$($status,)* 414, 429, 431, 500, 503];
            }
        )+
    };
}

/// The error of an operation whose documented statuses are `S`.
pub struct ApiError<S> {
    error: AppError,
    statuses: PhantomData<fn() -> S>,
}

impl<S> ApiError<S> {
    /// The domain error inside.
    pub fn inner(&self) -> &AppError {
        &self.error
    }
}

impl<S> From<AppError> for ApiError<S> {
    fn from(error: AppError) -> Self {
        Self {
            error,
            statuses: PhantomData,
        }
    }
}

impl<S> From<crate::db::StoreError> for ApiError<S> {
    fn from(error: crate::db::StoreError) -> Self {
        AppError::from(error).into()
    }
}

impl<S> IntoResponse for ApiError<S> {
    fn into_response(self) -> Response {
        render(&self.error)
    }
}

impl<S: ErrorSet> ApiResponse for ApiError<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&status| MetaResponse {
                    description: describe(status),
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: CONTENT_TYPE,
                        schema: Problem::schema_ref(),
                    }],
                    headers: headers(status),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl<S> From<ApiError<S>> for poem::Error {
    fn from(error: ApiError<S>) -> Self {
        let response = error.into_response();
        // `poem::Error::into_response` gives the response the error's own extensions, not the
        // response's: carry the cause report over.
        let report = response.data::<std::sync::Arc<ErrorReport>>().cloned();
        let mut error = poem::Error::from_response(response);
        if let Some(report) = report {
            error.set_data(report);
        }
        error
    }
}

/// The documented headers of an error response: `Retry-After` on 429 and 503. (The rate-limit
/// fields, on every answer of a limited route, are added to the document in
/// [`crate::http::openapi`].)
fn headers(status: u16) -> Vec<MetaHeader> {
    let retry_after = |description: &str| MetaHeader {
        name: "Retry-After".to_owned(),
        description: Some(description.to_owned()),
        required: true,
        deprecated: false,
        schema: retry_after_schema(),
    };
    match status {
        429 => vec![retry_after("Seconds until a retry can succeed.")],
        503 => vec![retry_after("Seconds until a retry may succeed.")],
        _ => vec![],
    }
}

/// `Retry-After` in whole seconds: at least 1, at most a rate-limit window (24 h).
fn retry_after_schema() -> MetaSchemaRef {
    let mut schema = MetaSchema::new_with_format("integer", "int32");
    schema.minimum = Some(1.0);
    schema.maximum = Some(86_400.0);
    schema.example = Some(serde_json::json!(1));
    MetaSchemaRef::Inline(Box::new(schema))
}

fn describe(status: u16) -> &'static str {
    match status {
        400 => "The request is invalid; `errors` names each bad field or parameter.",
        401 => "Missing, invalid, expired or revoked credentials.",
        403 => "Authenticated, but the caller's role does not allow this.",
        404 => "The resource does not exist, or the caller may not see it.",
        409 => "The request conflicts with the current state.",
        412 => "`If-Match` does not match the current version.",
        413 => "The request body is larger than the limit (1 MiB by default).",
        414 => "The request target (path and query) is longer than the limit (8 KiB by default).",
        415 => "The request body is not `application/json`.",
        422 => "The `Idempotency-Key` was already used for a different request.",
        429 => "Too many requests; retry after the time in `Retry-After`.",
        431 => {
            "The request headers are larger than the limit (16 KiB in total by default); \
                `errors` names the largest header."
        }
        500 => "An unexpected error; it is logged under the response's request id.",
        503 => "A dependency is saturated or down; retry after the time in `Retry-After`.",
        _ => "Error.",
    }
}

/// Turns any error raised outside a handler into a problem response: unknown routes (404),
/// wrong methods (405), unparsable parameters and bodies (400), wrong media types (415), bodies
/// over the limit (413), missing credentials (401). Responses that are already problems pass
/// through unchanged.
pub fn render_poem_error(err: poem::Error) -> Response {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let problem = if let Some(e) = err.downcast_ref::<ParseParamError>() {
        Problem::new(StatusCode::BAD_REQUEST, "validation", e.to_string())
            .with_fields(vec![FieldError::new(e.name, e.reason.clone())])
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        let name = e
            .name
            .strip_prefix("param")
            .and_then(|n| n.parse().ok())
            .and_then(crate::telemetry::context::path_parameter)
            .unwrap_or(e.name);
        Problem::new(
            StatusCode::BAD_REQUEST,
            "validation",
            format!("path parameter `{name}`: {}", e.reason),
        )
        .with_fields(vec![FieldError::new(name, e.reason.clone())])
    } else if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        Problem::new(StatusCode::BAD_REQUEST, "validation", e.to_string())
            .with_fields(vec![FieldError::new("body", e.reason.clone())])
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            e.to_string(),
        )
    } else if err.is::<AuthorizationError>() {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this operation needs `Authorization: Bearer <access token>`",
        )
    } else if status == StatusCode::NOT_FOUND {
        Problem::new(status, "not-found", "no route matches this path")
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        Problem::new(
            status,
            "method-not-allowed",
            "this path does not accept this method",
        )
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            status,
            "too-large",
            "the request body is larger than the limit",
        )
    } else if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), "request failed");
        internal_problem()
    } else {
        let kind = status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "-");
        Problem::new(status, &kind, err.to_string())
    };
    problem.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_to_their_documented_bound() {
        assert_eq!(bounded("short".to_owned(), 5), "short");
        assert_eq!(bounded("too long".to_owned(), 5), "too …");
        assert_eq!(bounded("ééééééé".to_owned(), 3).chars().count(), 3);
        let fields = (0..80)
            .map(|i| FieldError::new(format!("f{i}"), "x".repeat(5000)))
            .collect();
        let problem = Problem::new(StatusCode::BAD_REQUEST, "validation", "d".repeat(9000))
            .with_fields(fields);
        assert_eq!(problem.detail.chars().count(), DETAIL_MAX);
        let errors = problem.errors.unwrap();
        assert_eq!(errors.len(), ERRORS_MAX);
        assert_eq!(errors[0].message.chars().count(), MESSAGE_MAX);
    }
}
