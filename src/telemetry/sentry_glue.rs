//! Sentry: initialised before the runtime starts; each request runs on its own hub whose scope
//! carries `request_id`, `trace_id`, `instance_id`, route and user id (never email or client
//! address unless `SENTRY_SEND_DEFAULT_PII` is on). Every 5xx is captured by the HTTP
//! middleware; panics by Sentry's panic integration, with the same scope.

use std::sync::Arc;
use std::time::Duration;

use sentry::integrations::tracing::BreadcrumbLayer;
use sentry::protocol::{Event, Level};
use sentry::{Hub, User};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::{Layer, registry::LookupSpan};

use crate::config::SentryConfig;

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

/// A hub for one request, its scope tagged with the request's identity.
pub fn request_hub(request_id: &str, trace_id: &str, instance_id: &str, route: &str) -> Arc<Hub> {
    let hub = Arc::new(Hub::new_from_top(Hub::main()));
    hub.configure_scope(|scope| {
        scope.set_tag("request_id", request_id);
        scope.set_tag("trace_id", trace_id);
        scope.set_tag("instance_id", instance_id);
        scope.set_tag("route", route);
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

/// Captures a server error (5xx) on `hub`.
pub fn capture_server_error(hub: &Hub, method: &str, route: &str, status: u16) {
    hub.capture_event(Event {
        level: Level::Error,
        message: Some(format!("{method} {route} answered {status}")),
        logger: Some("tasklight::http".into()),
        ..Default::default()
    });
}
