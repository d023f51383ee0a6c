//! Child spans made with the OpenTelemetry API directly, under the current request's server
//! span: cheaper than going through `tracing` for the many small spans of a request (queries,
//! cache lookups, Redis commands). Nothing is built when trace export is off or outside a request.

use std::borrow::Cow;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Tracer as _};

use crate::telemetry::{context, traces};

/// A child span of the current request, ended when dropped; `None` when nothing is exported.
pub fn child(
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> Option<opentelemetry_sdk::trace::Span> {
    let tracer = traces::tracer()?;
    let parent = context::with(|c| c.otel.clone()).flatten()?;
    Some(
        tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent),
    )
}

/// A span that continues the trace whose `traceparent` was stored (by the request that made an
/// event), for work done later on its behalf (a webhook delivery), and the `traceparent` to send
/// onwards from it. Without trace export there is no span, and the onward value keeps the
/// stored trace id with a new span id, so that a receiver's logs still join the trace.
pub fn continue_trace(
    traceparent: Option<&str>,
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> (Option<opentelemetry_sdk::trace::Span>, String) {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{Span as _, TraceContextExt};
    let mut carrier = std::collections::HashMap::new();
    if let Some(parent) = traceparent {
        carrier.insert("traceparent".to_owned(), parent.to_owned());
    }
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let remote = traces::remote_span_context(&parent);
    if let Some(tracer) = traces::tracer() {
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let context = span.span_context().clone();
        let onward = traces::traceparent(
            &context.trace_id().to_string(),
            &context.span_id().to_string(),
            context.trace_flags(),
        );
        return (Some(span), onward);
    }
    let trace_id = remote
        .as_ref()
        .map_or_else(traces::random_trace_id, |r| r.trace_id());
    let flags = remote
        .as_ref()
        .map_or(opentelemetry::trace::TraceFlags::default(), |r| {
            r.trace_flags()
        });
    let span_id =
        opentelemetry::trace::SpanId::from_bytes(rand::random::<u64>().max(1).to_be_bytes());
    let _ = parent.span();
    (
        None,
        traces::traceparent(&trace_id.to_string(), &span_id.to_string(), flags),
    )
}
