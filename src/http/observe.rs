//! The observing middleware, outermost on every request: assigns the request id, continues the
//! caller's W3C trace, opens the server span (`{METHOD} {route template}` with the HTTP
//! semantic-convention attributes), records the request-duration histogram and the in-flight
//! gauge, writes the access-log line, reports 5xx to Sentry, and answers with `X-Request-Id` and
//! `traceparent` headers.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceFlags};
use poem::http::HeaderValue;
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use sentry::SentryFutureExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::app::AppState;
use crate::http::request_id;
use crate::telemetry::context::{self, RequestContext};
use crate::telemetry::metrics::known_method;
use crate::telemetry::routes::RouteTable;
use crate::telemetry::{sentry_glue, traces};

/// Marks a response produced by the panic handler (Sentry's panic hook already reported it).
#[derive(Clone, Copy)]
pub struct Panicked;

/// See the module documentation.
pub struct Observe {
    state: AppState,
    routes: Arc<RouteTable>,
}

impl Observe {
    /// The middleware for one app, labelling requests with the templates in `routes`.
    pub fn new(state: AppState, routes: RouteTable) -> Self {
        Self {
            state,
            routes: Arc::new(routes),
        }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            ep,
            state: self.state.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// See [`Observe`].
pub struct ObserveEndpoint<E> {
    ep: E,
    state: AppState,
    routes: Arc<RouteTable>,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let state = &self.state;
        let request_id: Arc<str> = match req
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(incoming) if request_id::is_safe(incoming) => incoming.into(),
            _ => uuid::Uuid::now_v7().to_string().into(),
        };
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let route = self.routes.resolve(&path);
        let client_ip = req.remote_addr().as_socket_addr().map(|peer| {
            crate::ratelimit::client_ip::client_ip(
                peer.ip(),
                req.headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
                &state.config.trusted_proxies,
            )
        });
        let client = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let user_agent: String = req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect();
        let exporting = crate::telemetry::tracing_enabled();
        // Without export no layer reads the span: skip building it in the registry.
        let span = if !exporting {
            tracing::Span::none()
        } else {
            let method = known_method(&method);
            tracing::info_span!(
                target: "tasklight::http",
                "HTTP request",
                otel.name = format!("{method} {route}"),
                otel.kind = "server",
                otel.status_code = Empty,
                http.request.method = method,
                http.route = route,
                http.response.status_code = Empty,
                url.scheme = "http",
                client.address = %client,
                user_agent.original = %user_agent,
                request.id = %request_id,
                error.type = Empty,
                cache.l1_hits = Empty,
            )
        };
        let parent = traces::extract_parent(req.headers());
        let remote = traces::remote_span_context(&parent);
        let mut otel = None;
        let (trace_id, span_id, flags) = if exporting {
            let _ = span.set_parent(parent);
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            otel = Some(cx);
            (sc.trace_id(), sc.span_id(), sc.trace_flags())
        } else {
            let trace_id = remote
                .as_ref()
                .map_or_else(traces::random_trace_id, |r| r.trace_id());
            let flags = remote
                .as_ref()
                .map_or(TraceFlags::SAMPLED, |r| r.trace_flags());
            let span_id = SpanId::from_bytes(rand::random::<u64>().to_be_bytes());
            (trace_id, span_id, flags)
        };
        let context = Arc::new(RequestContext {
            request_id: request_id.clone(),
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            otel,
            route,
            user_id: OnceLock::new(),
            client_ip,
            account_limit: OnceLock::new(),
            cache_l1_hits: Default::default(),
        });
        state.metrics.active_requests.increment(1.0);
        state
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The server span is not entered while the request runs: child spans find their parent
        // through the request context, which spares a trip through every `tracing` layer on
        // each poll.
        let inner = context::scope(context.clone(), self.ep.call(req));
        let sentry_hub = sentry_glue::enabled().then(|| {
            sentry_glue::request_hub(
                &request_id,
                &context.trace_id,
                &state.config.instance_id,
                route,
            )
        });
        let result = match &sentry_hub {
            Some(hub) => inner.bind_hub(hub.clone()).await,
            None => inner.await,
        };
        state.metrics.active_requests.decrement(1.0);
        state
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let mut response = match result {
            Ok(output) => output.into_response(),
            Err(err) => err.into_response(),
        };
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        span.record("http.response.status_code", status);
        let l1_hits = context
            .cache_l1_hits
            .load(std::sync::atomic::Ordering::Relaxed);
        if l1_hits > 0 {
            span.record("cache.l1_hits", l1_hits);
        }
        if status >= 500 {
            span.record("error.type", status.to_string());
            span.record("otel.status_code", "ERROR");
        }
        state
            .metrics
            .record_request(&method, route, status, elapsed.as_secs_f64());
        let bytes = body_length(&mut response);
        let user_id = context.user_id.get().map(ToString::to_string);
        context::sync_scope(context.clone(), || {
            tracing::info!(
                target: "tasklight::access",
                method = %method,
                route,
                path = %path,
                status,
                duration_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
                bytes,
                user_id,
                client_address = %client,
                "request completed"
            );
        });
        if let (Some(hub), true) = (&sentry_hub, status >= 500)
            && response.data::<Panicked>().is_none()
        {
            sentry_glue::capture_server_error(hub, known_method(&method), route, status);
        }
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(request_id::HEADER, value);
        }
        let traceparent = traces::traceparent(&context.trace_id, &context.span_id, flags);
        if let Ok(value) = HeaderValue::from_str(&traceparent) {
            headers.insert("traceparent", value);
        }
        if state.is_draining() {
            // Keep-alive connections would otherwise stay pooled in the balancer until the
            // listener closes under them; closing each after its response moves new requests
            // to other instances while this one still answers.
            headers.insert(
                poem::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
        }
        Ok(response)
    }
}

/// The response body's length when it is known without reading it (uncompressed size).
fn body_length(response: &mut Response) -> Option<u64> {
    use http_body::Body as _;
    let boxed: http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error> =
        response.take_body().into();
    let length = boxed.size_hint().exact();
    response.set_body(Body::from(boxed));
    length
}
