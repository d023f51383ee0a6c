//! Spans reach an OTLP collector, continue the caller's trace, and carry the semantic-convention
//! attributes; database queries and password hashing are child spans.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use super::otlp::Receiver;
use super::process::Process;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_request_with_traceparent_continues_that_trace_with_server_and_database_spans() {
    let receiver = Receiver::start().await;
    let app = Process::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
        ("OTEL_SERVICE_NAME", "tasklight-under-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci"),
    ])
    .await;
    let response = app
        .client
        .post(format!("{}/api/v1/auth/register", app.base))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("user-agent", "trace-test/1.0")
        .json(&serde_json::json!({"email": "trace@example.com", "password": "correct horse battery", "display_name": "T"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")),
        "{traceparent}"
    );

    let spans = receiver
        .wait_until(|s| s.trace_id() == TRACE_ID && s.span.kind == SpanKind::Server as i32)
        .await;
    let server = spans
        .iter()
        .find(|s| s.trace_id() == TRACE_ID && s.span.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(server.span.name, "POST /api/v1/auth/register");
    assert_eq!(server.parent_span_id(), PARENT_ID);
    assert!(traceparent.contains(&format!(
            "-{}-",
            server
                .span
                .span_id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )));
    for (key, expected) in [
        ("http.request.method", "POST"),
        ("http.route", "/api/v1/auth/register"),
        ("http.response.status_code", "201"),
        ("url.scheme", "http"),
        ("client.address", "127.0.0.1"),
        ("user_agent.original", "trace-test/1.0"),
    ] {
        assert_eq!(server.attr(key).as_deref(), Some(expected), "{key}");
    }
    assert!(server.attr("request.id").is_some_and(|id| !id.is_empty()));
    assert_ne!(
        server.span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    for (key, expected) in [
        ("service.name", "tasklight-under-test"),
        ("service.instance.id", "proc-instance"),
        ("deployment.environment.name", "ci"),
        ("service.version", env!("CARGO_PKG_VERSION")),
    ] {
        assert_eq!(
            server.resource_attr(key).as_deref(),
            Some(expected),
            "{key}"
        );
    }

    let spans = receiver
        .wait_until(|s| {
            s.trace_id() == TRACE_ID && s.attr("db.operation.name").as_deref() == Some("INSERT")
        })
        .await;
    let insert = spans
        .iter()
        .find(|s| {
            s.trace_id() == TRACE_ID
                && s.attr("db.query.text")
                    .is_some_and(|q| q.starts_with("INSERT INTO users"))
        })
        .expect("a span for the user insert");
    assert_eq!(insert.attr("db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(insert.span.name, "INSERT users");
    assert_eq!(insert.span.kind, SpanKind::Client as i32);
    let query = insert.attr("db.query.text").unwrap();
    assert!(
        query.contains("$1") && !query.contains("trace@example.com"),
        "{query}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id() == TRACE_ID && s.span.name == "password.hash")
    );
    // Registration passes two rate-limit decisions. The request's own (per address), made in
    // process without Redis, is recorded on the server span; the per-account one has its span.
    for (key, expected) in [
        ("rate_limit.policy", "auth-ip"),
        ("rate_limit.result", "allowed"),
        ("rate_limit.backend", "local"),
    ] {
        assert_eq!(server.attr(key).as_deref(), Some(expected), "{key}");
    }
    assert!(
        !spans.iter().any(|s| s.trace_id() == TRACE_ID
            && s.span.name == "rate_limit.check"
            && s.attr("rate_limit.policy").as_deref() == Some("auth-ip")),
        "an in-process decision has no span of its own"
    );
    let decision = spans
        .iter()
        .find(|s| {
            s.trace_id() == TRACE_ID
                && s.span.name == "rate_limit.check"
                && s.attr("rate_limit.policy").as_deref() == Some("auth-account")
        })
        .expect("a rate_limit.check span for auth-account");
    assert_eq!(
        decision.attr("rate_limit.result").as_deref(),
        Some("allowed")
    );
    assert_eq!(
        decision.attr("rate_limit.backend").as_deref(),
        Some("local")
    );
    assert_eq!(decision.span.parent_span_id, server.span.span_id);
}

#[tokio::test]
async fn a_client_error_leaves_the_span_status_unset() {
    let receiver = Receiver::start().await;
    let app = Process::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)]).await;
    let trace_id = "11112222333344445555666677778888";
    let response = app
        .client
        .get(format!("{}/api/v1/users/me", app.base))
        .header("traceparent", format!("00-{trace_id}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let server_span = |s: &super::otlp::Received| {
        s.trace_id() == trace_id && s.span.kind == SpanKind::Server as i32
    };
    let spans = receiver.wait_until(server_span).await;
    let server = spans.iter().find(|s| server_span(s)).unwrap();
    assert_eq!(server.span.name, "GET /api/v1/users/me");
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("401")
    );
    assert_eq!(server.attr("error.type"), None);
    assert_ne!(
        server.span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
}

#[tokio::test]
async fn sigterm_exports_queued_spans_and_exits_zero() {
    let receiver = Receiver::start().await;
    let app = Process::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)]).await;
    let trace_id = "99990000aaaabbbbccccddddeeeeffff";
    let response = app
        .client
        .get(format!("{}/health/ready", app.base))
        .header("traceparent", format!("00-{trace_id}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Stop at once: the span is still queued (batches leave every second) and must be flushed.
    let status = tokio::task::spawn_blocking(move || app.stop())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(receiver.spans().iter().any(|s| s.trace_id() == trace_id));
}

#[tokio::test]
async fn cache_misses_are_child_spans_and_in_process_hits_are_counted_on_the_server_span() {
    let receiver = Receiver::start().await;
    let app = Process::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)]).await;
    let (access, _) = app.user("cache@example.com", "correct horse battery").await;
    let first = "aaaa0000bbbb1111cccc2222dddd3333";
    let second = "eeee4444ffff5555aaaa6666bbbb7777";
    for trace_id in [first, second] {
        let response = app
            .client
            .get(format!("{}/api/v1/users/me", app.base))
            .bearer_auth(&access)
            .header("traceparent", format!("00-{trace_id}-{PARENT_ID}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let spans = receiver
        .wait_until(|s| s.trace_id() == second && s.span.kind == SpanKind::Server as i32)
        .await;
    let misses: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id() == first && s.span.name.starts_with("cache.get "))
        .collect();
    assert_eq!(
        misses.len(),
        2,
        "the user and the session were loaded: {misses:#?}"
    );
    for miss in &misses {
        assert_eq!(miss.attr("cache.layer").as_deref(), Some("db"));
        assert_eq!(miss.attr("cache.hit").as_deref(), Some("false"));
    }
    let repeat = spans
        .iter()
        .find(|s| s.trace_id() == second && s.span.kind == SpanKind::Server as i32)
        .unwrap();
    // The session and the user for the bearer check, and the user again for the profile.
    assert_eq!(repeat.attr("cache.l1_hits").as_deref(), Some("3"));
    assert!(
        !spans
            .iter()
            .any(|s| s.trace_id() == second && s.span.name.starts_with("cache.get "))
    );
}

/// One trace from a request to the delivery of its event: the webhook attempt is a client span
/// under the request's server span, the delivery's `traceparent` names that span, and its log
/// line carries the request's request id and trace id.
#[tokio::test]
async fn a_webhook_delivery_continues_the_trace_of_the_request_that_made_its_event() {
    let receiver = Receiver::start().await;
    let hook = crate::helpers::receiver::Receiver::start().await;
    let app = Process::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
        ("LOG_FORMAT", "json"),
        ("TASKLIGHT_WEBHOOK_ALLOWED_NETS", "127.0.0.0/8"),
        ("TASKLIGHT_WEBHOOK_ALLOW_HTTP", "true"),
    ])
    .await;
    let (token, _) = app
        .user("delivery-trace@example.com", "correct horse battery")
        .await;
    let post = |path: String, body: serde_json::Value| {
        app.client
            .post(format!("{}/api/v1{path}", app.base))
            .bearer_auth(&token)
            .json(&body)
    };
    let project: serde_json::Value =
        post("/projects".into(), serde_json::json!({"name": "Traced"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let project = project["id"].as_str().unwrap().to_owned();
    let subscribed = post(
        format!("/projects/{project}/webhooks"),
        serde_json::json!({"url": hook.url("/hook"), "event_types": ["task.created"]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(subscribed.status(), 201);
    let created = post(
        format!("/projects/{project}/tasks"),
        serde_json::json!({"title": "traced"}),
    )
    .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
    .header("x-request-id", "delivery-trace-1")
    .send()
    .await
    .unwrap();
    assert_eq!(created.status(), 201);

    let delivered = hook
        .wait_accepted(1, std::time::Duration::from_secs(5))
        .await;
    let onward = delivered[0].header("traceparent").to_owned();
    assert!(onward.starts_with(&format!("00-{TRACE_ID}-")), "{onward}");
    let spans = receiver
        .wait_until(|s| s.trace_id() == TRACE_ID && s.span.name == "webhook deliver")
        .await;
    let server = spans
        .iter()
        .find(|s| s.trace_id() == TRACE_ID && s.span.kind == SpanKind::Server as i32)
        .expect("the request's server span");
    let delivery = spans
        .iter()
        .find(|s| s.trace_id() == TRACE_ID && s.span.name == "webhook deliver")
        .expect("the delivery's span");
    let server_id: String = server
        .span
        .span_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let delivery_id: String = delivery
        .span
        .span_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(delivery.span.kind, SpanKind::Client as i32);
    assert_eq!(
        delivery.parent_span_id(),
        server_id,
        "the delivery is a child of the request"
    );
    assert!(
        onward.contains(&delivery_id),
        "the receiver's traceparent names the delivery span: {onward}"
    );
    assert_eq!(
        delivery.attr("http.response.status_code").as_deref(),
        Some("204")
    );
    assert_eq!(
        delivery.attr("tasklight.request_id").as_deref(),
        Some("delivery-trace-1")
    );
    assert!(
        delivery
            .attr("tasklight.event.id")
            .is_some_and(|id| id == delivered[0].header("webhook-id"))
    );

    // The delivery's log line: under the request's ids, with the event's.
    let found = super::process::wait_for(std::time::Duration::from_secs(5), || async {
        app.json_log()
            .iter()
            .any(|l| l["message"] == "webhook delivered")
    })
    .await;
    assert!(found, "a `webhook delivered` line");
    let log = app.json_log();
    let line = log
        .iter()
        .find(|l| l["message"] == "webhook delivered")
        .unwrap();
    assert_eq!(line["request_id"], "delivery-trace-1");
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["span_id"], delivery_id.as_str());
    assert_eq!(line["event_id"], delivered[0].header("webhook-id"));
    assert_eq!(line["status"], 204);
    app.stop();
}
