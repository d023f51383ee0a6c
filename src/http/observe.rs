//! The observing middleware, outermost on every request: assigns the request id, continues the
//! caller's W3C trace, opens the server span (`{METHOD} {route template}` with the HTTP
//! semantic-convention attributes), records the request-duration histogram and the in-flight
//! gauge, writes the access-log line, reports 5xx to Sentry, and answers with `X-Request-Id` and
//! `traceparent` headers.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags};
use poem::http::{HeaderValue, Method, Uri};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use sentry::SentryFutureExt;

use crate::config::IpBlock;
use crate::http::drain::Drain;
use crate::http::request_id;
use crate::telemetry::context::{self, RequestContext};
use crate::telemetry::error_report::ErrorReport;
use crate::telemetry::metrics::{Metrics, known_method};
use crate::telemetry::otlp::ServerSpan;
use crate::telemetry::routes::RouteTable;
use crate::telemetry::{logs, sentry_glue, traces};

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
    method: Method,
    uri: Uri,
    route: &'static str,
    client_ip: Option<std::net::IpAddr>,
    client: ClientAddress,
}

/// The client address as text, formatted once per request (empty when unknown) for the access
/// log and the span: through `Display`, an IPv4 address cost about 1,000 instructions each time.
struct ClientAddress {
    text: [u8; 45],
    len: usize,
}

impl ClientAddress {
    fn new(ip: Option<std::net::IpAddr>) -> Self {
        let mut address = Self {
            text: [0; 45],
            len: 0,
        };
        match ip {
            None => {}
            Some(std::net::IpAddr::V4(v4)) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        address.push(b'.');
                    }
                    if octet >= 100 {
                        address.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        address.push(b'0' + octet / 10 % 10);
                    }
                    address.push(b'0' + octet % 10);
                }
            }
            Some(v6) => {
                use std::io::Write as _;
                let mut cursor = std::io::Cursor::new(&mut address.text[..]);
                let _ = write!(cursor, "{v6}");
                address.len = cursor.position() as usize;
            }
        }
        address
    }

    fn push(&mut self, byte: u8) {
        self.text[self.len] = byte;
        self.len += 1;
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let started_at = std::time::SystemTime::now();
        let arrival = self.arrival(&req);
        let (context, flags, server_span) = request_context(&req, &arrival);
        let sentry_hub = sentry_hub(&arrival, &context, &self.shared.instance_id);
        let mut response = self.serve(req, &context, sentry_hub.clone()).await;
        let status = response.status().as_u16();
        if let Some(span) = server_span {
            span.finish(&arrival, &context, started_at, status);
        }
        self.record(&arrival, &context, &mut response, started.elapsed());
        if let Some(hub) = sentry_hub {
            report_server_error(&hub, &arrival, &response);
        }
        self.answer_headers(&mut response, &arrival, &context, flags);
        Ok(response)
    }
}

impl<E: Endpoint> ObserveEndpoint<E> {
    /// Reads the request id (a safe incoming one, else a new UUIDv7), the route template and
    /// the client address.
    fn arrival(&self, req: &Request) -> Arrival {
        let request_id: Arc<str> = match req
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(incoming) if request_id::is_safe(incoming) => incoming.into(),
            _ => uuid::Uuid::now_v7().to_string().into(),
        };
        let route = self.shared.routes.resolve(req.uri().path());
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
        Arrival {
            request_id,
            method: req.method().clone(),
            uri: req.uri().clone(),
            route,
            client_ip,
            client: ClientAddress::new(client_ip),
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
        // One future whichever way: awaiting either of two wrappers of `inner` would give this
        // future room for both.
        let result = match sentry_hub {
            Some(hub) => futures_util::future::Either::Left(inner.bind_hub(hub)),
            None => futures_util::future::Either::Right(inner),
        }
        .await;
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
        response: &mut Response,
        elapsed: Duration,
    ) {
        let status = response.status().as_u16();
        self.shared.metrics.record_request(
            arrival.method.as_str(),
            arrival.route,
            status,
            elapsed.as_secs_f64(),
        );
        if !access_log_enabled() {
            return;
        }
        let mut user_buffer = uuid::Uuid::encode_buffer();
        let user_id = context
            .user_id
            .get()
            .map(|id| &*id.hyphenated().encode_lower(&mut user_buffer));
        let line = logs::AccessLine {
            method: arrival.method.as_str(),
            route: arrival.route,
            path: arrival.uri.path(),
            status,
            duration_ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            bytes: body_length(response),
            user_id,
            client_address: arrival.client.as_str(),
        };
        // Straight to the JSON log when it is installed; through `tracing` otherwise (the pretty
        // format), and while Sentry is on, whose layer keeps events as breadcrumbs.
        if sentry_glue::enabled() || !logs::write_access(&line, context) {
            context::sync_scope(context.clone(), || logs::access_event(&line));
        }
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

/// Whether the log filter lets access lines through. The filter is fixed at start-up, so it is
/// asked once: asking on each request walked every layer's filter (about 1,000 instructions).
fn access_log_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| tracing::enabled!(target: "tasklight::access", tracing::Level::INFO))
}

/// A sampled server span, from the request's arrival to its end: `{METHOD} {route template}`,
/// with the HTTP semantic-convention attributes. It is not an SDK span: its ids come from here,
/// the configured sampler decides on it, child spans see it as their parent through the request
/// context, and at the end it goes to the exporter's queue as a [`ServerSpan`], which the
/// exporter encodes straight into OTLP. (Through `tracing` and its bridge it cost several µs a
/// request; as an SDK span, still about 5,000 instructions more.)
struct PendingServerSpan {
    context: SpanContext,
    parent: Option<SpanId>,
    user_agent: String,
}

impl PendingServerSpan {
    fn finish(
        self,
        arrival: &Arrival,
        context: &RequestContext,
        started_at: std::time::SystemTime,
        status: u16,
    ) {
        let method = known_method(arrival.method.as_str());
        // "METHOD route", joined by hand: `format!` cost about 750 instructions a request.
        let mut name = String::with_capacity(method.len() + 1 + arrival.route.len());
        name.push_str(method);
        name.push(' ');
        name.push_str(arrival.route);
        traces::export_server_span(ServerSpan {
            context: self.context,
            parent: self.parent,
            name,
            start: started_at,
            end: std::time::SystemTime::now(),
            method,
            route: arrival.route,
            client_address: arrival.client.as_str().to_owned(),
            user_agent: self.user_agent,
            request_id: arrival.request_id.clone(),
            status,
            l1_hits: context
                .cache_l1_hits
                .load(std::sync::atomic::Ordering::Relaxed),
            rate_limit: context
                .rate_limit
                .get()
                .map(|d| [d.policy, d.result, d.backend]),
        });
    }
}

/// The request's context (ids, route, client) under the caller's trace (or a new one), and the
/// server span to finish when trace export is on and the sampler keeps it.
fn request_context(
    req: &Request,
    arrival: &Arrival,
) -> (Arc<RequestContext>, TraceFlags, Option<PendingServerSpan>) {
    let parent = traces::extract_parent(req.headers());
    let remote = traces::remote_span_context(&parent);
    let trace_id = remote
        .as_ref()
        .map_or_else(traces::random_trace_id, |r| r.trace_id());
    let span_id = SpanId::from_bytes(rand::random::<u64>().max(1).to_be_bytes());
    let mut otel = None;
    let mut server_span = None;
    let flags = match traces::sample_server_span(&parent, trace_id, arrival.route) {
        Some((flags, trace_state)) => {
            let span_context = SpanContext::new(trace_id, span_id, flags, false, trace_state);
            otel = Some(Context::new().with_remote_span_context(span_context.clone()));
            if span_context.is_sampled() {
                server_span = Some(PendingServerSpan {
                    context: span_context,
                    parent: remote.as_ref().map(|r| r.span_id()),
                    // The first 256 characters: `to_str` accepts visible ASCII only, so
                    // characters are bytes and any cut is at a character boundary.
                    user_agent: req
                        .headers()
                        .get(poem::http::header::USER_AGENT)
                        .and_then(|v| v.to_str().ok())
                        .map(|agent| agent.get(..256).unwrap_or(agent).to_owned())
                        .unwrap_or_default(),
                });
            }
            flags
        }
        None => remote
            .as_ref()
            .map_or(TraceFlags::SAMPLED, |r| r.trace_flags()),
    };
    let context = Arc::new(RequestContext {
        request_id: arrival.request_id.clone(),
        trace_id: trace_id.into(),
        span_id: span_id.into(),
        otel,
        route: arrival.route,
        user_id: OnceLock::new(),
        client_ip: arrival.client_ip,
        account_rate_limit: OnceLock::new(),
        cache_l1_hits: Default::default(),
        rate_limit: OnceLock::new(),
    });
    (context, flags, server_span)
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
            &context.span_id,
            instance_id,
            arrival.route,
        )
    })
}

/// Reports a 5xx answer to Sentry on the request's hub (a panic was reported by the panic hook):
/// an internal error as an exception with its cause chain, any other 5xx as a message.
fn report_server_error(hub: &sentry::Hub, arrival: &Arrival, response: &Response) {
    let status = response.status().as_u16();
    if status >= 500 && response.data::<Panicked>().is_none() {
        let method = known_method(arrival.method.as_str());
        let cause = response.data::<Arc<ErrorReport>>().map(Arc::as_ref);
        sentry_glue::capture_server_error(hub, method, arrival.route, status, cause);
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

#[cfg(test)]
mod tests {
    use super::ClientAddress;

    #[test]
    fn client_addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:192.168.1.1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ClientAddress::new(Some(ip)).as_str(), ip.to_string());
        }
        assert_eq!(ClientAddress::new(None).as_str(), "");
    }
}
