//! The observing middleware, outermost on every request: assigns the request id, continues the
//! caller's W3C trace, opens the server span (`{METHOD} {route template}` with the HTTP
//! semantic-convention attributes), records the request-duration histogram and the in-flight
//! gauge, writes the access-log line, reports 5xx to Sentry, and answers with `X-Request-Id` and
//! `traceparent` headers.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceFlags};
use poem::http::HeaderValue;
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use sentry::SentryFutureExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::IpBlock;
use crate::http::drain::Drain;
use crate::http::request_id;
use crate::telemetry::context::{self, RequestContext};
use crate::telemetry::metrics::{Metrics, known_method};
use crate::telemetry::routes::RouteTable;
use crate::telemetry::{sentry_glue, traces};

/// Marks a response produced by the panic handler (Sentry's panic hook already reported it).
#[derive(Clone, Copy)]
pub struct Panicked;

/// What the observing middleware works with, shared by every request.
struct Shared {
    metrics: Arc<Metrics>,
    drain: Arc<Drain>,
    instance_id: Arc<str>,
    trusted_proxies: Vec<IpBlock>,
    routes: RouteTable,
}

/// See the module documentation.
pub struct Observe(Arc<Shared>);

impl Observe {
    /// The middleware for one app: requests are labelled with the templates in `routes`, and
    /// `X-Forwarded-For` is believed from `trusted_proxies` only.
    pub fn new(
        metrics: Arc<Metrics>,
        drain: Arc<Drain>,
        instance_id: Arc<str>,
        trusted_proxies: Vec<IpBlock>,
        routes: RouteTable,
    ) -> Self {
        Self(Arc::new(Shared {
            metrics,
            drain,
            instance_id,
            trusted_proxies,
            routes,
        }))
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            ep,
            shared: self.0.clone(),
        }
    }
}

/// See [`Observe`].
pub struct ObserveEndpoint<E> {
    ep: E,
    shared: Arc<Shared>,
}

/// What the access log, the span and the metrics say about a request, read from it on arrival.
struct Arrival {
    request_id: Arc<str>,
    method: String,
    path: String,
    route: &'static str,
    client_ip: Option<std::net::IpAddr>,
    client: String,
    user_agent: String,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let arrival = self.arrival(&req);
        let exporting = crate::telemetry::tracing_enabled();
        let span = server_span(&arrival, exporting);
        let (context, flags) = request_context(&req, &arrival, &span, exporting);
        let sentry_hub = sentry_hub(&arrival, &context, &self.shared.instance_id);
        let mut response = self.serve(req, &context, sentry_hub.clone()).await;
        self.record(&arrival, &context, &span, &mut response, started.elapsed());
        if let Some(hub) = sentry_hub {
            report_server_error(&hub, &arrival, &response);
        }
        self.answer_headers(&mut response, &arrival, &context, flags);
        Ok(response)
    }
}

impl<E: Endpoint> ObserveEndpoint<E> {
    /// Reads the request id (a safe incoming one, else a new UUIDv7), the route template, the
    /// client address and the user agent.
    fn arrival(&self, req: &Request) -> Arrival {
        let request_id: Arc<str> = match req
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(incoming) if request_id::is_safe(incoming) => incoming.into(),
            _ => uuid::Uuid::now_v7().to_string().into(),
        };
        let path = req.uri().path().to_owned();
        let route = self.shared.routes.resolve(&path);
        let client_ip = req.remote_addr().as_socket_addr().map(|peer| {
            crate::http::client_ip::client_ip(
                peer.ip(),
                req.headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
                &self.shared.trusted_proxies,
            )
        });
        let user_agent = req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect();
        Arrival {
            request_id,
            method: req.method().as_str().to_owned(),
            path,
            route,
            client: client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            client_ip,
            user_agent,
        }
    }

    /// Runs the inner endpoint inside the request context (and Sentry's per-request hub, when
    /// error reporting is on), counted as in flight.
    async fn serve(
        &self,
        req: Request,
        context: &Arc<RequestContext>,
        sentry_hub: Option<Arc<sentry::Hub>>,
    ) -> Response {
        let shared = &self.shared;
        shared.metrics.active_requests.increment(1.0);
        shared.drain.enter();
        // The server span is not entered while the request runs: child spans find their parent
        // through the request context, which spares a trip through every `tracing` layer on
        // each poll.
        let inner = context::scope(context.clone(), self.ep.call(req));
        let result = match sentry_hub {
            Some(hub) => inner.bind_hub(hub).await,
            None => inner.await,
        };
        shared.metrics.active_requests.decrement(1.0);
        shared.drain.leave();
        match result {
            Ok(output) => output.into_response(),
            Err(err) => err.into_response(),
        }
    }

    /// Finishes the server span, records the duration histogram and writes the access-log line.
    fn record(
        &self,
        arrival: &Arrival,
        context: &Arc<RequestContext>,
        span: &tracing::Span,
        response: &mut Response,
        elapsed: Duration,
    ) {
        let status = response.status().as_u16();
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
        self.shared.metrics.record_request(
            &arrival.method,
            arrival.route,
            status,
            elapsed.as_secs_f64(),
        );
        let bytes = body_length(response);
        let user_id = context.user_id.get().map(ToString::to_string);
        context::sync_scope(context.clone(), || {
            tracing::info!(
                target: "tasklight::access",
                method = %arrival.method,
                route = arrival.route,
                path = %arrival.path,
                status,
                duration_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
                bytes,
                user_id,
                client_address = %arrival.client,
                "request completed"
            );
        });
    }

    /// `X-Request-Id`, `traceparent`, and `Connection: close` while draining.
    fn answer_headers(
        &self,
        response: &mut Response,
        arrival: &Arrival,
        context: &RequestContext,
        flags: TraceFlags,
    ) {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&arrival.request_id) {
            headers.insert(request_id::HEADER, value);
        }
        let traceparent = traces::traceparent(&context.trace_id, &context.span_id, flags);
        if let Ok(value) = HeaderValue::from_str(&traceparent) {
            headers.insert("traceparent", value);
        }
        if self.shared.drain.is_draining() {
            // Keep-alive connections would otherwise stay pooled in the balancer until the
            // listener closes under them; closing each after its response moves new requests
            // to other instances while this one still answers.
            headers.insert(
                poem::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
        }
    }
}

/// The server span, when traces are exported; without export no layer reads it, so it is not
/// built in the registry at all.
fn server_span(arrival: &Arrival, exporting: bool) -> tracing::Span {
    if !exporting {
        return tracing::Span::none();
    }
    let method = known_method(&arrival.method);
    let route = arrival.route;
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
        client.address = %arrival.client,
        user_agent.original = %arrival.user_agent,
        request.id = %arrival.request_id,
        error.type = Empty,
        cache.l1_hits = Empty,
    )
}

/// The request's context (ids, route, client) under the caller's trace: the server span's
/// ids when traces are exported, else the caller's trace id (or a new one) and a new span id.
fn request_context(
    req: &Request,
    arrival: &Arrival,
    span: &tracing::Span,
    exporting: bool,
) -> (Arc<RequestContext>, TraceFlags) {
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
        request_id: arrival.request_id.clone(),
        trace_id: trace_id.to_string(),
        span_id: span_id.to_string(),
        otel,
        route: arrival.route,
        user_id: OnceLock::new(),
        client_ip: arrival.client_ip,
        account_rate_limit: OnceLock::new(),
        cache_l1_hits: Default::default(),
    });
    (context, flags)
}

/// Sentry's hub for this request, tagged with its ids, when error reporting is on.
fn sentry_hub(
    arrival: &Arrival,
    context: &RequestContext,
    instance_id: &str,
) -> Option<Arc<sentry::Hub>> {
    sentry_glue::enabled().then(|| {
        sentry_glue::request_hub(
            &arrival.request_id,
            &context.trace_id,
            instance_id,
            arrival.route,
        )
    })
}

/// Reports a 5xx answer to Sentry on the request's hub (a panic was reported by the panic hook).
fn report_server_error(hub: &sentry::Hub, arrival: &Arrival, response: &Response) {
    let status = response.status().as_u16();
    if status >= 500 && response.data::<Panicked>().is_none() {
        let method = known_method(&arrival.method);
        sentry_glue::capture_server_error(hub, method, arrival.route, status);
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
