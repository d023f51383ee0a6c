//! An OTLP/gRPC trace receiver in the test process (opentelemetry-proto's tonic server types).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;

use super::process::wait_for;

/// A received span with its resource's attributes.
#[derive(Clone, Debug)]
pub struct Received {
    pub resource: Vec<KeyValue>,
    pub span: Span,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    pub fn attr(&self, key: &str) -> Option<String> {
        find(&self.span.attributes, key)
    }

    pub fn resource_attr(&self, key: &str) -> Option<String> {
        find(&self.resource, key)
    }

    /// Every string the span carries (name and attribute values), for leak checks.
    pub fn all_text(&self) -> String {
        let mut text = self.span.name.clone();
        for kv in self.span.attributes.iter().chain(self.resource.iter()) {
            text.push(' ');
            text.push_str(&kv.key);
            text.push('=');
            text.push_str(&value(kv.value.as_ref()));
        }
        for event in &self.span.events {
            for kv in &event.attributes {
                text.push(' ');
                text.push_str(&value(kv.value.as_ref()));
            }
        }
        text
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn find(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| value(kv.value.as_ref()))
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        resource: resource.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver.
pub struct Receiver {
    pub endpoint: String,
    collector: Collector,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Self {
            endpoint,
            collector,
        }
    }

    pub fn spans(&self) -> Vec<Received> {
        self.collector.spans.lock().unwrap().clone()
    }

    /// Waits (at most 15 s) until some span satisfies `predicate`, and returns all spans.
    pub async fn wait_until(&self, predicate: impl Fn(&Received) -> bool) -> Vec<Received> {
        let found = wait_for(Duration::from_secs(15), || async {
            self.spans().iter().any(&predicate)
        })
        .await;
        assert!(
            found,
            "no matching span arrived within 15 s; got {:#?}",
            self.spans()
                .iter()
                .map(|s| &s.span.name)
                .collect::<Vec<_>>()
        );
        self.spans()
    }
}
