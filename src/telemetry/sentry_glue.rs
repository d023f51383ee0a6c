//! Sentry: initialised before the runtime starts; each request runs on its own hub whose scope
//! carries `request_id`, `trace_id`, `instance_id`, route and user id (never email or client
//! address unless `SENTRY_SEND_DEFAULT_PII` is on), and the request's OpenTelemetry trace and
//! span as its trace context. Every 5xx is captured by the HTTP middleware (an internal error as
//! an exception with its cause chain, without values); panics by Sentry's panic integration, with
//! the same scope.

use std::sync::Arc;
use std::time::Duration;

use sentry::integrations::tracing::BreadcrumbLayer;
use sentry::protocol::{Event, Exception, Level, Mechanism, TraceContext};
use sentry::{Hub, User};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::{Layer, registry::LookupSpan};

use crate::config::SentryConfig;
use crate::telemetry::error_report::ErrorReport;

/// Starts the Sentry client; keep the guard alive until exit (dropping it flushes events).
pub fn init(config: &SentryConfig) -> sentry::ClientInitGuard {
    sentry::init(
        sentry::ClientOptions::new()
            .dsn(&config.dsn)
            .release(concat!("tasklight@", env!("CARGO_PKG_VERSION")))
            .environment(config.environment.clone())
            .send_default_pii(config.send_pii)
            .attach_stacktrace(true)
            .traces_sample_rate(0.0)
            .shutdown_timeout(Duration::from_secs(3)),
    )
}

/// Whether a Sentry client is active. The main hub is asked, not the thread's: a thread whose
/// hub was made before `init` would otherwise never see the client.
pub fn enabled() -> bool {
    Hub::main().client().is_some_and(|c| c.is_enabled())
}

/// Our own log events at INFO and above become breadcrumbs of the next captured event.
pub fn layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    BreadcrumbLayer::new().with_filter(filter_fn(|meta| {
        meta.is_event()
            && meta.target().starts_with("tasklight")
            && meta.target() != "tasklight::access"
            && *meta.level() <= tracing::Level::INFO
    }))
}

/// A hub for one request, its scope tagged with the request's identity. Its trace context is
/// the request's OpenTelemetry trace and server span, so an event's trace link in Sentry leads
/// to the trace that Jaeger holds (and panics captured on this hub carry it too).
pub fn request_hub(
    request_id: &str,
    trace_id: &str,
    span_id: &str,
    instance_id: &str,
    route: &str,
) -> Arc<Hub> {
    let hub = Arc::new(Hub::new_from_top(Hub::main()));
    hub.configure_scope(|scope| {
        scope.set_tag("request_id", request_id);
        scope.set_tag("trace_id", trace_id);
        scope.set_tag("instance_id", instance_id);
        scope.set_tag("route", route);
        if let (Ok(trace_id), Ok(span_id)) = (trace_id.parse(), span_id.parse()) {
            scope.set_context(
                "trace",
                TraceContext {
                    trace_id,
                    span_id,
                    op: Some("http.server".into()),
                    ..Default::default()
                },
            );
        }
    });
    hub
}

/// Records the authenticated user on the current hub's scope (id only).
pub fn set_user(user_id: uuid::Uuid) {
    if enabled() {
        sentry::configure_scope(|scope| {
            scope.set_user(Some(User {
                id: Some(user_id.to_string()),
                ..Default::default()
            }));
        });
    }
}

/// Captures a server error (5xx) on `hub`. An internal error (`cause`) goes as an exception
/// per error of its chain (innermost first, as Sentry lists them), fingerprinted by route and
/// chain so that each different cause is its own issue; any other 5xx (a 503 while the
/// database is busy, say) goes as a message, one issue per route and status.
pub fn capture_server_error(
    hub: &Hub,
    method: &str,
    route: &str,
    status: u16,
    cause: Option<&ErrorReport>,
) {
    let transaction = format!("{method} {route}");
    let mut event = Event {
        level: Level::Error,
        logger: Some("tasklight::http".into()),
        ..Default::default()
    };
    match cause {
        Some(report) => {
            event.exception = report
                .causes
                .iter()
                .rev()
                .map(|cause| Exception {
                    ty: cause.kind.clone(),
                    value: Some(cause.detail.clone()),
                    mechanism: Some(Mechanism {
                        ty: "tasklight.internal_error".into(),
                        handled: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect::<Vec<_>>()
                .into();
            let mut fingerprint = vec![transaction.clone()];
            for cause in &report.causes {
                fingerprint.push(cause.kind.clone());
                fingerprint.push(cause.detail.clone());
            }
            event.fingerprint = fingerprint.into_iter().map(Into::into).collect();
        }
        None => {
            event.message = Some(format!("{transaction} answered {status}"));
            event.fingerprint = vec![transaction.clone().into(), status.to_string().into()].into();
        }
    }
    event.transaction = Some(transaction);
    hub.capture_event(event);
}
