//! Traces: OTLP/gRPC export through a bounded queue that never blocks a request, W3C trace
//! context in and out, and the sampler chosen by `OTEL_TRACES_SAMPLER`.
//!
//! Finished spans go into a bounded channel (`try_send`); a background task exports them in
//! batches. When the queue is full or an export fails, the spans are dropped and counted in
//! `tasklight_telemetry_dropped_total{signal="spans"}`, and the switch is logged once, not per
//! span.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceId, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor, Tracer,
};
use tokio::sync::{mpsc, oneshot};

use crate::config::{Sampling, TraceConfig};
use crate::telemetry::DROPPED_SPANS;

/// Spans waiting for export at most; more are dropped and counted.
const QUEUE_CAPACITY: usize = 16_384;
/// Spans per export call (larger batches cost less per span to encode and send).
const BATCH_SIZE: usize = 512;
/// Longest wait before a partial batch is exported.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Exports running at once (encoding the next batch while the last is on the wire).
const MAX_EXPORTS_IN_FLIGHT: usize = 2;
/// Longest an export may take before its spans count as dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tracer, once trace export is on: database spans are made with it directly.
static TRACER: std::sync::OnceLock<Tracer> = std::sync::OnceLock::new();

/// The tracer, if trace export is on.
pub fn tracer() -> Option<&'static Tracer> {
    TRACER.get()
}

/// The running trace pipeline.
pub struct TracePipeline {
    provider: SdkTracerProvider,
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

impl TracePipeline {
    /// Builds the exporter (inside the tokio runtime) and the provider.
    pub fn start(config: &TraceConfig, instance_id: &str) -> anyhow::Result<(Self, Tracer)> {
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.instance.id", instance_id.to_owned()),
                KeyValue::new("deployment.environment.name", config.environment.clone()),
            ])
            .build();
        let exporter =
            super::otlp::GrpcExporter::new(&config.endpoint, resource.clone(), EXPORT_TIMEOUT)?;
        let (spans_tx, spans_rx) = mpsc::channel(QUEUE_CAPACITY);
        let (flush_tx, flush_rx) = mpsc::channel(4);
        tokio::spawn(export_loop(exporter, spans_rx, flush_rx));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(QueueingProcessor { spans: spans_tx })
            .with_sampler(sampler(config.sampling))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("tasklight");
        let _ = TRACER.set(tracer.clone());
        Ok((
            Self {
                provider,
                flush: flush_tx,
            },
            tracer,
        ))
    }

    /// Exports what is queued (waiting at most `timeout`), then shuts the provider down.
    pub async fn shutdown(self, timeout: Duration) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.flush.send(done_tx).await.is_ok() {
            let _ = tokio::time::timeout(timeout, done_rx).await;
        }
        let _ = self.provider.shutdown();
    }
}

fn sampler(sampling: Sampling) -> Sampler {
    match sampling {
        Sampling::AlwaysOn => Sampler::AlwaysOn,
        Sampling::AlwaysOff => Sampler::AlwaysOff,
        Sampling::Ratio(r) => Sampler::TraceIdRatioBased(r),
        Sampling::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        Sampling::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        Sampling::ParentBasedRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

/// Hands finished spans to the export task without ever waiting.
#[derive(Debug)]
struct QueueingProcessor {
    spans: mpsc::Sender<SpanData>,
}

impl SpanProcessor for QueueingProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.spans.try_send(span).is_err() {
            DROPPED_SPANS.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

async fn export_loop<E: SpanExporter + 'static>(
    exporter: E,
    mut spans: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let exporter = std::sync::Arc::new(exporter);
    let mut in_flight: tokio::task::JoinSet<(u64, Option<String>)> = tokio::task::JoinSet::new();
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut failing = false;
    let mut tick = tokio::time::interval(BATCH_DELAY);
    let start_export = |in_flight: &mut tokio::task::JoinSet<_>, chunk: Vec<SpanData>| {
        let exporter = exporter.clone();
        in_flight.spawn(async move {
            let count = chunk.len() as u64;
            let error = match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(chunk)).await {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err.to_string()),
                Err(_) => Some("export timed out".to_owned()),
            };
            (count, error)
        });
    };
    loop {
        let can_send = in_flight.len() < MAX_EXPORTS_IN_FLIGHT;
        tokio::select! {
            // Stop taking spans while a full batch waits for a free export: the queue then
            // fills, and the processor drops and counts.
            received = spans.recv(), if batch.len() < BATCH_SIZE => match received {
                Some(span) => batch.push(span),
                None => return,
            },
            _ = tick.tick() => {
                if can_send && !batch.is_empty() {
                    start_export(&mut in_flight, std::mem::take(&mut batch));
                }
            }
            Some(done) = flushes.recv() => {
                while let Ok(span) = spans.try_recv() {
                    batch.push(span);
                }
                while !batch.is_empty() {
                    let take = batch.len().min(BATCH_SIZE);
                    start_export(&mut in_flight, batch.drain(..take).collect());
                }
                while let Some(result) = in_flight.join_next().await {
                    failing = record(result, failing);
                }
                let _ = done.send(());
            }
            Some(result) = in_flight.join_next(), if !in_flight.is_empty() => {
                failing = record(result, failing);
            }
        }
        if batch.len() >= BATCH_SIZE && in_flight.len() < MAX_EXPORTS_IN_FLIGHT {
            start_export(&mut in_flight, std::mem::take(&mut batch));
        }
    }
}

/// Counts a failed export's spans as dropped; logs when exports start failing and recover.
fn record(result: Result<(u64, Option<String>), tokio::task::JoinError>, failing: bool) -> bool {
    let (count, error) = result.unwrap_or((0, Some("export task failed".to_owned())));
    match error {
        Some(error) => {
            DROPPED_SPANS.fetch_add(count, Ordering::Relaxed);
            if !failing {
                tracing::warn!(
                    error,
                    "span export is failing; spans are dropped and counted until it recovers"
                );
            }
            true
        }
        None => {
            if failing {
                tracing::info!("span export recovered");
            }
            false
        }
    }
}

/// Reads `traceparent` and `tracestate` from request headers.
struct HeaderReader<'a>(&'a poem::http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The remote parent from the request's W3C headers (an empty context if there is none).
pub fn extract_parent(headers: &poem::http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderReader(headers))
}

/// The remote parent's span context, if the request carried a valid one.
pub fn remote_span_context(parent: &Context) -> Option<SpanContext> {
    let span = parent.span();
    let context = span.span_context();
    context.is_valid().then(|| context.clone())
}

/// A random trace id (when no tracer is installed and the request brought none).
pub fn random_trace_id() -> TraceId {
    TraceId::from_bytes(rand::random::<u128>().to_be_bytes())
}

/// The `traceparent` value for a span.
pub fn traceparent(trace_id: &str, span_id: &str, flags: TraceFlags) -> String {
    format!("00-{trace_id}-{span_id}-{:02x}", flags.to_u8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued() {
        let mut headers = poem::http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let parent = remote_span_context(&extract_parent(&headers)).unwrap();
        assert_eq!(
            parent.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(parent.span_id().to_string(), "b7ad6b7169203331");
        assert!(parent.is_sampled());
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        let mut headers = poem::http::HeaderMap::new();
        headers.insert("traceparent", "00-zz-yy-01".parse().unwrap());
        assert!(remote_span_context(&extract_parent(&headers)).is_none());
    }
}
