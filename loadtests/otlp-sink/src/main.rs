//! `otlp-sink [ADDR]`: receives OTLP/gRPC spans on ADDR (default 127.0.0.1:4317), counts them,
//! and prints `spans received: N (server spans: M)` on SIGUSR1 and when stopped.
//!
//! It counts the spans of each export by walking the protobuf's length-delimited fields down to
//! `ExportTraceServiceRequest.resource_spans[].scope_spans[].spans[]`, without decoding them:
//! the benchmarks run it on the core of the load generator, and decoding every span into
//! prost's structs (a `String` per attribute key and value) took that core's time from wrk, so
//! a service with telemetry on measured slower than it was.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::DecodeError;
use prost::encoding::{DecodeContext, WireType, decode_varint, skip_field};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};

/// The spans in one `ExportTraceServiceRequest`, read as that message: all of them, and those
/// of kind `SPAN_KIND_SERVER`.
#[derive(Debug, Default, Clone, PartialEq)]
struct SpanCount {
    spans: u64,
    server: u64,
}

/// `Span.kind`'s field number and the value of `SPAN_KIND_SERVER`.
const SPAN_KIND_FIELD: u64 = 6;
const SPAN_KIND_SERVER: u64 = 2;

/// The fields from a `ResourceSpans` down to its spans: `scope_spans` (2), then `spans` (2).
const RESOURCE_TO_SPANS: [u64; 2] = [2, 2];

/// A decoding error (prost offers no other constructor; this one is deprecated as internal).
#[allow(deprecated)]
fn malformed(what: &'static str) -> DecodeError {
    DecodeError::new(what)
}

/// A field of a protobuf message, as [`fields`] hands it over.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Walks the fields of the message in `bytes`, calling `visit` with each field's number and value.
fn fields<'a>(
    mut bytes: &'a [u8],
    mut visit: impl FnMut(u64, Field<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    while !bytes.is_empty() {
        let key = decode_varint(&mut bytes)?;
        let (field, len) = match WireType::try_from(key & 7)? {
            WireType::Varint => (Field::Varint(decode_varint(&mut bytes)?), 0),
            WireType::SixtyFourBit => (Field::Fixed, 8),
            WireType::ThirtyTwoBit => (Field::Fixed, 4),
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut bytes)?)
                    .map_err(|_| malformed("length too large"))?;
                let value = bytes
                    .get(..len)
                    .ok_or_else(|| malformed("buffer underflow"))?;
                (Field::Bytes(value), len)
            }
            _ => return Err(malformed("groups are not used by OTLP")),
        };
        bytes = bytes
            .get(len..)
            .ok_or_else(|| malformed("buffer underflow"))?;
        visit(key >> 3, field)?;
    }
    Ok(())
}

/// Counts the spans (the fields numbered `path[last]`) inside the length-delimited fields
/// numbered `path[0..last]` of the message in `bytes`.
fn count(bytes: &[u8], path: &[u64]) -> Result<SpanCount, DecodeError> {
    let mut found = SpanCount::default();
    fields(bytes, |number, field| {
        if let (Field::Bytes(inner), [first, rest @ ..]) = (field, path)
            && number == *first
        {
            if rest.is_empty() {
                found.spans += 1;
                if kind(inner)? == SPAN_KIND_SERVER {
                    found.server += 1;
                }
            } else {
                found.add(&count(inner, rest)?);
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// The `kind` of the span in `bytes` (0, unspecified, when absent).
fn kind(bytes: &[u8]) -> Result<u64, DecodeError> {
    let mut kind = 0;
    fields(bytes, |number, field| {
        if let (SPAN_KIND_FIELD, Field::Varint(value)) = (number, field) {
            kind = value;
        }
        Ok(())
    })?;
    Ok(kind)
}

impl SpanCount {
    fn add(&mut self, other: &SpanCount) {
        self.spans += other.spans;
        self.server += other.server;
    }
}

impl prost::Message for SpanCount {
    fn encode_raw(&self, _buf: &mut impl bytes::BufMut) {}

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Field 1: `resource_spans`.
        if tag == 1 && wire_type == WireType::LengthDelimited {
            let len =
                usize::try_from(decode_varint(buf)?).map_err(|_| malformed("length too large"))?;
            if len > buf.remaining() {
                return Err(malformed("buffer underflow"));
            }
            let resource: Bytes = buf.copy_to_bytes(len);
            self.add(&count(&resource, &RESOURCE_TO_SPANS)?);
            Ok(())
        } else {
            skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The trace service: `Export` counts the spans (all, server) and answers success.
#[derive(Default, Clone)]
struct Sink(Arc<[AtomicU64; 2]>);

impl NamedService for Sink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl UnaryService<SpanCount> for Sink {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<SpanCount>) -> Self::Future {
        let count = request.into_inner();
        self.0[0].fetch_add(count.spans, Ordering::Relaxed);
        self.0[1].fetch_add(count.server, Ordering::Relaxed);
        Box::pin(async { Ok(tonic::Response::new(ExportTraceServiceResponse::default())) })
    }
}

impl<B> Service<http::Request<B>> for Sink
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let sink = self.clone();
        if req.uri().path() == "/opentelemetry.proto.collector.trace.v1.TraceService/Export" {
            Box::pin(async move {
                let codec =
                    tonic_prost::ProstCodec::<ExportTraceServiceResponse, SpanCount>::default();
                Ok(Grpc::new(codec).unary(sink, req).await)
            })
        } else {
            Box::pin(async {
                Ok(tonic::Status::unimplemented("only TraceService/Export").into_http())
            })
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".into());
    let sink = Sink::default();
    let received = sink.0.clone();
    // SIGUSR1: the counts so far, one line (benchmarks read them between runs).
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    let report = sink.0.clone();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            print_counts(&report);
        }
    });
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    tonic::transport::Server::builder()
        .add_service(sink)
        .serve_with_shutdown(addr.parse()?, stop)
        .await?;
    print_counts(&received);
    Ok(())
}

fn print_counts(received: &[AtomicU64; 2]) {
    println!(
        "spans received: {} (server spans: {})",
        received[0].load(Ordering::Relaxed),
        received[1].load(Ordering::Relaxed)
    );
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::SpanCount;

    fn span(name: &str, kind: SpanKind) -> Span {
        Span {
            name: name.into(),
            kind: kind as i32,
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue {
                key: "http.route".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(
                        "/api/v1/tasks/{task_id}".into(),
                    )),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_count_is_the_number_of_spans_in_every_scope_of_every_resource() {
        let scope = |n: usize| ScopeSpans {
            // Every third span a server span (kind after the attributes would parse the same).
            spans: (0..n)
                .map(|i| {
                    let kind = if i % 3 == 0 {
                        SpanKind::Server
                    } else {
                        SpanKind::Internal
                    };
                    span(&format!("span {i}"), kind)
                })
                .collect(),
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![scope(3), scope(0), scope(5)],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![scope(1)],
                    ..Default::default()
                },
            ],
        };
        let bytes = request.encode_to_vec();
        // Scopes of 3, 0, 5 and 1 spans: server spans at 0 (of 3), 0 and 3 (of 5), 0 (of 1).
        assert_eq!(
            SpanCount::decode(bytes.as_slice()).unwrap(),
            SpanCount {
                spans: 9,
                server: 4
            }
        );
        // A cut message is an error, not a smaller count.
        assert!(SpanCount::decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
