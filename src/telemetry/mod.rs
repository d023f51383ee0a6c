//! Observability: JSON logs, OpenTelemetry traces, Prometheus metrics and Sentry, all carrying
//! the same request id, trace id and instance id.
//!
//! Process-wide parts (the log subscriber, the tracer provider, Sentry) are installed once by
//! [`init`] and flushed by [`Telemetry::shutdown`]; metrics belong to each app ([`metrics`]).

pub mod context;
pub mod error_report;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod process;
pub mod routes;
pub mod sentry_glue;
pub mod sink;
pub mod span;
pub mod traces;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// Spans dropped (queue full or export failed), for the metrics.
pub static DROPPED_SPANS: AtomicU64 = AtomicU64::new(0);
/// Log lines dropped by the non-blocking writer, for the metrics.
pub static DROPPED_LOG_LINES: AtomicU64 = AtomicU64::new(0);

/// Targets that would trace the exporter itself, kept at `warn`.
const QUIET_TARGETS: &str = "h2=warn,hyper=warn,hyper_util=warn,tonic=warn,tower=warn,opentelemetry=warn,\
     opentelemetry_sdk=warn,sqlx=warn,poem::server=warn";

/// Keeps the process-wide telemetry alive; flush it with [`Telemetry::shutdown`].
pub struct Telemetry {
    log_guard: Option<sink::SinkGuard>,
    traces: Option<traces::TracePipeline>,
}

/// Installs logging (and, when configured, trace export) for the whole process. Must run inside
/// the tokio runtime (the OTLP exporter needs it). Safe to call once; later calls do nothing.
pub fn init(config: &Config) -> Telemetry {
    let (writer, guard) = sink::LogSink::new(std::io::stdout());
    let filter = || {
        EnvFilter::try_new(format!("{},{QUIET_TARGETS}", config.log_filter))
            .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET_TARGETS}")))
    };
    let mut access_writer = None;
    let log_layer = match config.log_format {
        LogFormat::Json => {
            let layer = logs::JsonLayer::new(writer, &config.instance_id, &config.service_name);
            access_writer = Some(layer.access_writer());
            layer.boxed()
        }
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .pretty()
            .with_writer(move || writer.clone())
            .boxed(),
    };
    let (trace_pipeline, otel_layer) = match &config.traces {
        Some(trace_config) => match traces::TracePipeline::start(trace_config, &config.instance_id)
        {
            Ok((pipeline, tracer)) => {
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_tracked_inactivity(false)
                    .with_threads(false)
                    .with_location(false)
                    .with_target(false)
                    .with_level(false)
                    // Spans only: events are already in the log, and copying each one into
                    // its span (and exporting it) was the largest part of tracing's cost.
                    .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.is_span()))
                    .with_filter(filter());
                (Some(pipeline), Some(layer))
            }
            Err(err) => {
                eprintln!("tasklight: OTEL_EXPORTER_OTLP_ENDPOINT: trace export disabled: {err}");
                (None, None)
            }
        },
        None => (None, None),
    };
    let sentry_layer = config.sentry.as_ref().map(|_| sentry_glue::layer());
    let installed = tracing_subscriber::registry()
        .with(log_layer.with_filter(filter()))
        .with(otel_layer)
        .with(sentry_layer)
        .try_init()
        .is_ok();
    if let (true, Some(access_writer)) = (installed, access_writer) {
        logs::install_access_writer(access_writer);
    }
    Telemetry {
        log_guard: installed.then_some(guard),
        traces: trace_pipeline,
    }
}

impl Telemetry {
    /// Exports queued spans and flushes buffered log lines (each waiting at most `timeout`).
    pub async fn shutdown(self, timeout: Duration) {
        if let Some(traces) = self.traces {
            traces.shutdown(timeout).await;
        }
        drop(self.log_guard);
    }
}
