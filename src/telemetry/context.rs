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
    pub trace_id: TraceHex,
    /// The server span id, 16 lower-case hex digits.
    pub span_id: SpanHex,
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
    /// The request's own rate-limit decision, when made in process (recorded on the server span).
    pub rate_limit: OnceLock<RateLimitNote>,
}

/// A rate-limit decision as the server span records it.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitNote {
    /// `rate_limit.policy`.
    pub policy: &'static str,
    /// `rate_limit.result`: `allowed` or `limited`.
    pub result: &'static str,
    /// `rate_limit.backend`: `local` or `redis`.
    pub backend: &'static str,
}

/// Lower-case hex digits of an id, kept inline: every request has two, and every log line and
/// answer reads them, so they are formatted once and never allocated.
macro_rules! hex_id {
    ($name:ident, $digits:literal, $id:ty) => {
        #[doc = concat!("An id as ", stringify!($digits), " lower-case hex digits.")]
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub struct $name([u8; $digits]);

        impl From<$id> for $name {
            fn from(id: $id) -> Self {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut out = [0u8; $digits];
                for (i, byte) in id.to_bytes().iter().enumerate() {
                    out[2 * i] = DIGITS[usize::from(byte >> 4)];
                    out[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
                }
                Self(out)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                // Only ASCII hex digits are ever stored.
                std::str::from_utf8(&self.0).unwrap_or_default()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self)
            }
        }
    };
}

hex_id!(TraceHex, 32, opentelemetry::trace::TraceId);
hex_id!(SpanHex, 16, opentelemetry::trace::SpanId);

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

/// A context for work done later on a request's behalf (a webhook delivery): its log lines
/// carry the request's id and the trace of `traceparent` (the delivery's own span), so that
/// searching the logs for a request id or a trace id finds the delivery too. `route` names the
/// work in place of a route template.
pub fn on_behalf_of(
    request_id: &str,
    traceparent: &str,
    route: &'static str,
) -> Arc<RequestContext> {
    use opentelemetry::trace::{SpanId, TraceId};
    let mut parts = traceparent.split('-').skip(1);
    let trace_id = parts
        .next()
        .and_then(|t| TraceId::from_hex(t).ok())
        .unwrap_or(TraceId::INVALID);
    let span_id = parts
        .next()
        .and_then(|s| SpanId::from_hex(s).ok())
        .unwrap_or(SpanId::INVALID);
    Arc::new(RequestContext {
        request_id: request_id.into(),
        trace_id: trace_id.into(),
        span_id: span_id.into(),
        otel: None,
        route,
        user_id: OnceLock::new(),
        client_ip: None,
        account_rate_limit: OnceLock::new(),
        cache_l1_hits: Default::default(),
        rate_limit: OnceLock::new(),
    })
}

/// The current request's W3C trace context as `traceparent` and `tracestate` header values,
/// or `None` outside a request. Events carry it, so that their delivery joins the trace of the
/// request that caused them.
pub fn trace_context() -> Option<(String, Option<String>)> {
    use opentelemetry::trace::{TraceContextExt, TraceFlags};
    with(|c| {
        let (flags, state) = match &c.otel {
            Some(otel) => {
                let span = otel.span();
                let span_context = span.span_context();
                (
                    span_context.trace_flags(),
                    span_context.trace_state().header(),
                )
            }
            None => (TraceFlags::default(), String::new()),
        };
        let parent = crate::telemetry::traces::traceparent(&c.trace_id, &c.span_id, flags);
        (parent, (!state.is_empty()).then_some(state))
    })
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

/// Notes the request's own rate-limit decision when it was made in process: the observing
/// middleware puts it on the server span as it ends it, with the other attributes it adds then
/// (one lock of the span instead of one per attribute).
pub fn note_rate_limit(decision: RateLimitNote) {
    with(|c| c.rate_limit.set(decision).ok());
}

/// Records the authenticated user of the current request (for the access log and Sentry).
pub fn set_user(user_id: Uuid) {
    with(|c| c.user_id.set(user_id).ok());
    crate::telemetry::sentry_glue::set_user(user_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId};

    #[test]
    fn ids_are_lower_case_hex_as_w3c_writes_them() {
        let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(&*TraceHex::from(trace), trace.to_string());
        assert_eq!(&*SpanHex::from(span), "00f067aa0ba902b7");
        assert_eq!(TraceHex::from(TraceId::INVALID).to_string(), "0".repeat(32));
    }
}
