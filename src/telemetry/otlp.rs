//! OTLP/gRPC span export with the request encoded by hand.
//!
//! The exporter of `opentelemetry-otlp` first converts each span into the generated protobuf
//! structs (a `String` for every attribute key and value, the batch cloned once more for
//! retries), then prost walks the nested messages, sizing each one again at every level. Profiled
//! on the cached read, that was about 12,000 instructions a span, as much as the rest of the
//! span's life. Here the `ExportTraceServiceRequest` is written in one pass straight from the
//! SDK's `SpanData` (child spans) and from the [`ServerSpan`]s the observing middleware records,
//! and sent with tonic's gRPC client as raw bytes.
//!
//! The message layout follows `opentelemetry/proto/collector/trace/v1/trace_service.proto` and
//! `opentelemetry/proto/trace/v1/trace.proto` (OTLP 1.x); the tests decode what is written here
//! with the generated types of `opentelemetry-proto`.

use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, Key, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SpanData;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The gRPC method of OTLP trace export.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field (string, bytes), written even when empty.
fn bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    key(out, field, LEN);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A length-delimited field left out when empty (proto3's default).
fn bytes_if_any(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    if !data.is_empty() {
        bytes(out, field, data);
    }
}

fn uint_if_any(out: &mut Vec<u8>, field: u64, value: u64) {
    if value != 0 {
        key(out, field, VARINT);
        varint(out, value);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u64, value: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

/// A nested message: `body` writes it at the end of `out`, then its key and length are put in
/// front of it (a move of the message's own bytes, with no buffer of its own).
fn message(out: &mut Vec<u8>, field: u64, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    body(out);
    let length = out.len() - start;
    key(out, field, LEN);
    varint(out, length as u64);
    let head_len = out.len() - start - length;
    out[start..].rotate_right(head_len);
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64
}

/// `AnyValue`.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => bytes(out, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::I64(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => fixed64(out, 4, f.to_bits()),
        Value::Array(array) => message(out, 5, |out| array_values(out, array)),
        #[allow(unreachable_patterns)]
        other => bytes(out, 1, other.to_string().as_bytes()),
    }
}

/// `ArrayValue.values`.
fn array_values(out: &mut Vec<u8>, array: &Array) {
    match array {
        Array::Bool(values) => {
            for v in values {
                message(out, 1, |out| any_value(out, &Value::Bool(*v)));
            }
        }
        Array::I64(values) => {
            for v in values {
                message(out, 1, |out| any_value(out, &Value::I64(*v)));
            }
        }
        Array::F64(values) => {
            for v in values {
                message(out, 1, |out| any_value(out, &Value::F64(*v)));
            }
        }
        Array::String(values) => {
            for v in values {
                message(out, 1, |out| bytes(out, 1, v.as_str().as_bytes()));
            }
        }
        #[allow(unreachable_patterns)]
        other => message(out, 1, |out| bytes(out, 1, other.to_string().as_bytes())),
    }
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// A `KeyValue` as field `field` of its parent. String values (most attributes) are sized
/// before they are written, so they need no move of their bytes afterwards.
fn attribute(out: &mut Vec<u8>, field: u64, key_: &Key, value: &Value) {
    match value {
        Value::String(text) => string_kv(out, field, key_.as_str(), text.as_str()),
        _ => message(out, field, |out| {
            bytes(out, 1, key_.as_str().as_bytes());
            message(out, 2, |out| any_value(out, value));
        }),
    }
}

/// A `KeyValue` with a string value, sized before it is written.
fn string_kv(out: &mut Vec<u8>, field: u64, name: &str, value: &str) {
    let (k, v) = (name.as_bytes(), value.as_bytes());
    let any_len = 1 + varint_len(v.len() as u64) + v.len();
    let kv_len =
        1 + varint_len(k.len() as u64) + k.len() + 1 + varint_len(any_len as u64) + any_len;
    key(out, field, LEN);
    varint(out, kv_len as u64);
    bytes(out, 1, k);
    key(out, 2, LEN);
    varint(out, any_len as u64);
    bytes(out, 1, v);
}

fn attributes(out: &mut Vec<u8>, field: u64, list: &[KeyValue]) {
    for kv in list {
        attribute(out, field, &kv.key, &kv.value);
    }
}

fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// The fields every `Span` starts with: ids, trace state, parent, name, kind and times.
fn span_head(
    out: &mut Vec<u8>,
    context: &opentelemetry::trace::SpanContext,
    parent: Option<opentelemetry::trace::SpanId>,
    name: &str,
    kind: &SpanKind,
    (start, end): (SystemTime, SystemTime),
) {
    bytes(out, 1, &context.trace_id().to_bytes());
    bytes(out, 2, &context.span_id().to_bytes());
    bytes_if_any(out, 3, context.trace_state().header().as_bytes());
    if let Some(parent) = parent {
        bytes(out, 4, &parent.to_bytes());
    }
    bytes_if_any(out, 5, name.as_bytes());
    key(out, 6, VARINT);
    varint(out, span_kind(kind));
    fixed64(out, 7, nanos(start));
    fixed64(out, 8, nanos(end));
}

/// A `flags` field (fixed32): the W3C trace flags, and whether the parent (or the linked span) is
/// remote.
fn span_flags(
    out: &mut Vec<u8>,
    field: u64,
    trace_flags: opentelemetry::trace::TraceFlags,
    remote: bool,
) {
    let flags = u32::from(trace_flags.to_u8()) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 };
    key(out, field, FIXED32);
    out.extend_from_slice(&flags.to_le_bytes());
}

/// `Span`.
fn span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    let parent = (span.parent_span_id != opentelemetry::trace::SpanId::INVALID)
        .then_some(span.parent_span_id);
    span_head(
        out,
        context,
        parent,
        &span.name,
        &span.span_kind,
        (span.start_time, span.end_time),
    );
    attributes(out, 9, &span.attributes);
    uint_if_any(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(out, 11, |out| {
            fixed64(out, 1, nanos(event.timestamp));
            bytes_if_any(out, 2, event.name.as_bytes());
            attributes(out, 3, &event.attributes);
            uint_if_any(out, 4, u64::from(event.dropped_attributes_count));
        });
    }
    uint_if_any(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        message(out, 13, |out| {
            bytes(out, 1, &link.span_context.trace_id().to_bytes());
            bytes(out, 2, &link.span_context.span_id().to_bytes());
            bytes_if_any(out, 3, link.span_context.trace_state().header().as_bytes());
            attributes(out, 4, &link.attributes);
            uint_if_any(out, 5, u64::from(link.dropped_attributes_count));
            let linked = &link.span_context;
            span_flags(out, 6, linked.trace_flags(), linked.is_remote());
        });
    }
    uint_if_any(out, 14, u64::from(span.links.dropped_count));
    match &span.status {
        Status::Unset => {}
        Status::Ok => message(out, 15, |out| uint_if_any(out, 3, 1)),
        Status::Error { description } => message(out, 15, |out| {
            bytes_if_any(out, 2, description.as_bytes());
            uint_if_any(out, 3, 2);
        }),
    }
    span_flags(out, 16, context.trace_flags(), span.parent_span_is_remote);
}

/// A finished server span, recorded by the observing middleware without the SDK's `Span` and
/// `SpanData`: its ids, times and fixed set of attributes are known when the request ends, so
/// they are written straight into the request (the SDK's span cost about 5,000 instructions a
/// request more: attribute vectors, a lock per change, a clone of its scope).
#[derive(Debug)]
pub struct ServerSpan {
    /// The span's context (trace id, span id, flags, trace state).
    pub context: opentelemetry::trace::SpanContext,
    /// The caller's span, if the request continued a trace.
    pub parent: Option<opentelemetry::trace::SpanId>,
    /// `{METHOD} {route template}`.
    pub name: String,
    /// When the request arrived and when its answer was ready.
    pub start: SystemTime,
    /// See `start`.
    pub end: SystemTime,
    /// `http.request.method` (a known method, or `_OTHER`).
    pub method: &'static str,
    /// `http.route`.
    pub route: &'static str,
    /// `client.address` (empty when unknown: left out).
    pub client_address: String,
    /// `user_agent.original`.
    pub user_agent: String,
    /// `request.id`.
    pub request_id: std::sync::Arc<str>,
    /// `http.response.status_code`; 5xx also set `error.type` and the status Error.
    pub status: u16,
    /// `cache.l1_hits`, when any.
    pub l1_hits: u32,
    /// `rate_limit.policy`, `rate_limit.result` and `rate_limit.backend` of an in-process
    /// decision.
    pub rate_limit: Option<[&'static str; 3]>,
}

/// A finished span waiting for export: from the SDK (child spans), or a server span.
#[derive(Debug)]
pub enum Queued {
    /// A span made through the OpenTelemetry SDK.
    Sdk(SpanData),
    /// A server span recorded by the observing middleware.
    Server(ServerSpan),
}

fn string_attribute(out: &mut Vec<u8>, name: &'static str, value: &str) {
    string_kv(out, 9, name, value);
}

fn int_attribute(out: &mut Vec<u8>, name: &'static str, value: i64) {
    message(out, 9, |out| {
        bytes(out, 1, name.as_bytes());
        message(out, 2, |out| {
            key(out, 3, VARINT);
            varint(out, value as u64);
        });
    });
}

/// `Span`, for a server span.
fn server_span(out: &mut Vec<u8>, span: &ServerSpan) {
    span_head(
        out,
        &span.context,
        span.parent,
        &span.name,
        &SpanKind::Server,
        (span.start, span.end),
    );
    string_attribute(out, "http.request.method", span.method);
    string_attribute(out, "http.route", span.route);
    string_attribute(out, "url.scheme", "http");
    if !span.client_address.is_empty() {
        string_attribute(out, "client.address", &span.client_address);
    }
    string_attribute(out, "user_agent.original", &span.user_agent);
    string_attribute(out, "request.id", &span.request_id);
    int_attribute(out, "http.response.status_code", i64::from(span.status));
    if span.l1_hits > 0 {
        int_attribute(out, "cache.l1_hits", i64::from(span.l1_hits));
    }
    if let Some([policy, result, backend]) = span.rate_limit {
        string_attribute(out, "rate_limit.policy", policy);
        string_attribute(out, "rate_limit.result", result);
        string_attribute(out, "rate_limit.backend", backend);
    }
    if span.status >= 500 {
        string_attribute(out, "error.type", &span.status.to_string());
        message(out, 15, |out| uint_if_any(out, 3, 2));
    }
    span_flags(out, 16, span.context.trace_flags(), span.parent.is_some());
}

/// Writes the `ExportTraceServiceRequest` for `spans` of one resource into `out`: one
/// `ResourceSpans`, and one `ScopeSpans` per instrumentation scope, in the order first seen
/// (server spans belong to `server_scope`).
pub fn encode_request<'a>(
    out: &mut Vec<u8>,
    resource: &Resource,
    server_scope: &'a opentelemetry::InstrumentationScope,
    spans: &'a [Queued],
) {
    message(out, 1, |out| {
        message(out, 1, |out| {
            for (k, v) in resource.iter() {
                attribute(out, 1, k, v);
            }
        });
        let scope_of = |queued: &'a Queued| match queued {
            Queued::Sdk(s) => &s.instrumentation_scope,
            Queued::Server(_) => server_scope,
        };
        let mut scopes: Vec<&opentelemetry::InstrumentationScope> = Vec::new();
        for queued in spans {
            let scope = scope_of(queued);
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        for scope in scopes {
            message(out, 2, |out| {
                message(out, 1, |out| {
                    bytes_if_any(out, 1, scope.name().as_bytes());
                    bytes_if_any(out, 2, scope.version().unwrap_or_default().as_bytes());
                    for kv in scope.attributes() {
                        attribute(out, 3, &kv.key, &kv.value);
                    }
                });
                for queued in spans.iter().filter(|q| scope_of(q) == scope) {
                    match queued {
                        Queued::Sdk(s) => message(out, 2, |out| span(out, s)),
                        Queued::Server(s) => message(out, 2, |out| server_span(out, s)),
                    }
                }
                bytes_if_any(out, 3, scope.schema_url().unwrap_or_default().as_bytes());
            });
        }
        bytes_if_any(out, 3, resource.schema_url().unwrap_or_default().as_bytes());
    });
}

/// Sends bytes that are already a protobuf message, and reads no more of the answer than its
/// status (a partial success is not reported by the collector protocol's other clients either).
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let remaining = src.remaining();
        src.advance(remaining);
        Ok(Some(()))
    }
}

/// The span exporter: OTLP over gRPC to one endpoint.
#[derive(Debug)]
pub struct GrpcExporter {
    channel: tonic::transport::Channel,
    resource: Resource,
    server_scope: opentelemetry::InstrumentationScope,
    timeout: Duration,
}

impl GrpcExporter {
    /// An exporter to `endpoint` (`http://host:4317`); connects on first use and reconnects as
    /// needed. Server spans are reported under `server_scope`.
    pub fn new(
        endpoint: &str,
        resource: Resource,
        server_scope: opentelemetry::InstrumentationScope,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let channel = tonic::transport::Channel::from_shared(endpoint.to_owned())?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy();
        Ok(Self {
            channel,
            resource,
            server_scope,
            timeout,
        })
    }

    /// Sends one batch.
    pub async fn export(&self, batch: Vec<Queued>) -> OTelSdkResult {
        let mut body = Vec::with_capacity(batch.len() * 320 + 256);
        encode_request(&mut body, &self.resource, &self.server_scope, &batch);
        drop(batch);
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let send = async {
            grpc.ready()
                .await
                .map_err(|err| OTelSdkError::InternalFailure(format!("not connected: {err}")))?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT_PATH);
            grpc.unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
                .await
                .map(|_| ())
                .map_err(|status| {
                    OTelSdkError::InternalFailure(format!(
                        "the collector answered {:?}: {}",
                        status.code(),
                        status.message()
                    ))
                })
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(OTelSdkError::Timeout(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    fn sample(status: Status, parent: SpanId) -> SpanData {
        let context = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("b7ad6b7169203331").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        );
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "retry",
            start,
            vec![KeyValue::new("attempt", 2)],
            0,
        ));
        SpanData {
            span_context: context,
            parent_span_id: parent,
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: "GET /api/v1/tasks/{task_id}".into(),
            start_time: start,
            end_time: start + Duration::from_micros(250),
            attributes: vec![
                KeyValue::new("http.route", "/api/v1/tasks/{task_id}"),
                KeyValue::new("http.response.status_code", 503_i64),
                KeyValue::new("cache.hit", true),
                KeyValue::new("ratio", 0.5),
                KeyValue::new("empty", ""),
                KeyValue::new("long", "x".repeat(300)),
                KeyValue::new(
                    "tags",
                    Value::Array(Array::String(vec!["a".into(), "b".into()])),
                ),
            ],
            dropped_attributes_count: 3,
            events,
            links: Default::default(),
            status,
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("tasklight")
                .with_version("1.2.3")
                .build(),
        }
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, value);
            assert_eq!(varint_len(value), out.len(), "{value}");
        }
    }

    #[test]
    fn the_request_decodes_with_the_generated_types() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
        let resource = Resource::builder_empty()
            .with_attributes([KeyValue::new("service.name", "tasklight")])
            .build();
        let parent = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let spans = vec![
            Queued::Sdk(sample(Status::error("upstream failed"), parent)),
            Queued::Sdk(sample(Status::Unset, SpanId::INVALID)),
        ];
        let scope = opentelemetry::InstrumentationScope::builder("tasklight")
            .with_version("1.2.3")
            .build();
        let mut body = Vec::new();
        encode_request(&mut body, &resource, &scope, &spans);
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();

        let resource_spans = &request.resource_spans[0];
        let service = &resource_spans.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        let scope_spans = &resource_spans.scope_spans[0];
        let scope = scope_spans.scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("tasklight", "1.2.3")
        );
        assert_eq!(scope_spans.spans.len(), 2);

        let first = &scope_spans.spans[0];
        assert_eq!(
            hex::encode(&first.trace_id),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(hex::encode(&first.span_id), "b7ad6b7169203331");
        assert_eq!(hex::encode(&first.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(first.trace_state, "vendor=value");
        assert_eq!(first.name, "GET /api/v1/tasks/{task_id}");
        assert_eq!(first.kind, 2);
        assert_eq!(first.start_time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(
            first.end_time_unix_nano - first.start_time_unix_nano,
            250_000
        );
        assert_eq!(first.dropped_attributes_count, 3);
        assert_eq!(first.flags, 0x01 | HAS_IS_REMOTE | IS_REMOTE);
        let status = first.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (2, "upstream failed")
        );
        let value = |name: &str| {
            first
                .attributes
                .iter()
                .find(|kv| kv.key == name)
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            value("http.route"),
            Some(V::StringValue("/api/v1/tasks/{task_id}".into()))
        );
        assert_eq!(value("http.response.status_code"), Some(V::IntValue(503)));
        assert_eq!(value("cache.hit"), Some(V::BoolValue(true)));
        assert_eq!(value("ratio"), Some(V::DoubleValue(0.5)));
        assert_eq!(value("empty"), Some(V::StringValue(String::new())));
        assert_eq!(value("long"), Some(V::StringValue("x".repeat(300))));
        match value("tags") {
            Some(V::ArrayValue(array)) => assert_eq!(array.values.len(), 2),
            other => panic!("tags: {other:?}"),
        }
        let event = &first.events[0];
        assert_eq!((event.name.as_str(), event.attributes.len()), ("retry", 1));

        let second = &scope_spans.spans[1];
        assert!(second.parent_span_id.is_empty());
        assert!(second.status.is_none());
    }
}
