//! The per-request context every log line and error body reads: request id, trace id, span id
//! and (once authenticated) user id. It lives in a task-local for the request's lifetime, so
//! reading it costs no span lookups.

use std::sync::{Arc, OnceLock};

use uuid::Uuid;

/// What identifies the request being served.
pub struct RequestContext {
    /// The request id (`X-Request-Id`).
    pub request_id: Arc<str>,
    /// The W3C trace id, 32 lower-case hex digits.
    pub trace_id: String,
    /// The server span id, 16 lower-case hex digits.
    pub span_id: String,
    /// The server span's OpenTelemetry context, parent of child spans (when export is on).
    pub otel: Option<opentelemetry::Context>,
    /// The route template (`/api/v1/tasks/{task_id}`), or `unmatched`.
    pub route: &'static str,
    /// The authenticated user, once the bearer check has run.
    pub user_id: OnceLock<Uuid>,
    /// The client address (the peer, or what a trusted proxy says in `X-Forwarded-For`).
    pub client_ip: Option<std::net::IpAddr>,
    /// The per-account rate-limit decision of a login, registration or refresh, as the items
    /// the rate-limit middleware adds to the response's headers.
    pub account_rate_limit: OnceLock<RateLimitItems>,
    /// Lookups answered by the in-process cache (recorded on the server span).
    pub cache_l1_hits: std::sync::atomic::AtomicU32,
}

/// One rate-limit decision as header items (draft-ietf-httpapi-ratelimit-headers-11).
#[derive(Debug, Clone)]
pub struct RateLimitItems {
    /// The item of the `RateLimit-Policy` field: `"auth-account";q=10;w=60`.
    pub policy: String,
    /// The item of the `RateLimit` field: `"auth-account";r=4;t=7`.
    pub limit: String,
}

tokio::task_local! {
    static CURRENT: Arc<RequestContext>;
}

/// Runs `future` with `context` as the current request context.
pub async fn scope<F: Future>(context: Arc<RequestContext>, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// Runs `f` with `context` as the current request context.
pub fn sync_scope<R>(context: Arc<RequestContext>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(context, f)
}

/// Calls `f` with the current request context, if there is one.
pub fn with<R>(f: impl FnOnce(&RequestContext) -> R) -> Option<R> {
    CURRENT.try_with(|context| f(context)).ok()
}

/// The current request id, or `"-"` outside a request.
pub fn request_id() -> String {
    with(|c| c.request_id.to_string()).unwrap_or_else(|| "-".to_owned())
}

/// The name of the `index`-th path parameter of the current route (poem-openapi reports path
/// parameters as `param0`, `param1`, ... in its parse errors).
pub fn path_parameter(index: usize) -> Option<&'static str> {
    with(|c| {
        c.route
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .nth(index)
    })
    .flatten()
}

/// Records the authenticated user of the current request (for the access log and Sentry).
pub fn set_user(user_id: Uuid) {
    with(|c| c.user_id.set(user_id).ok());
    crate::telemetry::sentry_glue::set_user(user_id);
}
