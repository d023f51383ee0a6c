//! `otlp-sink [ADDR]`: receives OTLP/gRPC spans on ADDR (default 127.0.0.1:4317), counts them,
//! and prints `spans received: N` when stopped.
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

/// The number of spans in one `ExportTraceServiceRequest`, read as that message.
#[derive(Debug, Default, Clone, PartialEq)]
struct SpanCount(u64);

/// The fields from a `ResourceSpans` down to its spans: `scope_spans` (2), then `spans` (2).
const RESOURCE_TO_SPANS: [u64; 2] = [2, 2];

/// A decoding error (prost offers no other constructor; this one is deprecated as internal).
#[allow(deprecated)]
fn malformed(what: &'static str) -> DecodeError {
    DecodeError::new(what)
}

/// Counts the fields numbered `path[last]` inside the length-delimited fields numbered
/// `path[0..last]` of the message in `bytes`.
fn count(mut bytes: &[u8], path: &[u64]) -> Result<u64, DecodeError> {
    let mut found = 0;
    while !bytes.is_empty() {
        let key = decode_varint(&mut bytes)?;
        let skip = match WireType::try_from(key & 7)? {
            WireType::Varint => {
                decode_varint(&mut bytes)?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut bytes)?)
                    .map_err(|_| malformed("length too large"))?;
                if len > bytes.len() {
                    return Err(malformed("buffer underflow"));
                }
                if key >> 3 == path[0] {
                    found += match path {
                        [_] => 1,
                        [_, rest @ ..] => count(&bytes[..len], rest)?,
                        [] => 0,
                    };
                }
                len
            }
            _ => return Err(malformed("groups are not used by OTLP")),
        };
        if skip > bytes.len() {
            return Err(malformed("buffer underflow"));
        }
        bytes = &bytes[skip..];
    }
    Ok(found)
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
            self.0 += count(&resource, &RESOURCE_TO_SPANS)?;
            Ok(())
        } else {
            skip_field(wire_type, tag, buf, ctx)
        }
    }

    fn encoded_len(&self) -> usize {
        0
    }

    fn clear(&mut self) {
        self.0 = 0;
    }
}

/// The trace service: `Export` counts the spans and answers success.
#[derive(Default, Clone)]
struct Sink(Arc<AtomicU64>);

impl NamedService for Sink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl UnaryService<SpanCount> for Sink {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<SpanCount>) -> Self::Future {
        self.0.fetch_add(request.into_inner().0, Ordering::Relaxed);
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
    println!("spans received: {}", received.load(Ordering::Relaxed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::SpanCount;

    fn span(name: &str) -> Span {
        Span {
            name: name.into(),
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
            spans: (0..n).map(|i| span(&format!("span {i}"))).collect(),
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
        assert_eq!(SpanCount::decode(bytes.as_slice()).unwrap(), SpanCount(9));
        // A cut message is an error, not a smaller count.
        assert!(SpanCount::decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
