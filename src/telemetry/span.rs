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
