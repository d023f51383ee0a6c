//! Log lines: one JSON object per line with fixed fields; the same ids in logs, span, headers
//! and error bodies; no secret ever written.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::otlp::Receiver;
use super::process::{Process, wait_for};

const REQUIRED: [&str; 10] = [
    "timestamp",
    "level",
    "target",
    "message",
    "request_id",
    "trace_id",
    "span_id",
    "instance_id",
    "service",
    "version",
];

fn access_lines(app: &Process, request_id: &str) -> Vec<Value> {
    app.json_log()
        .into_iter()
        .filter(|l| l["request_id"] == request_id && l["target"] == "tasklight::access")
        .collect()
}

#[tokio::test]
async fn one_request_carries_the_same_ids_in_logs_span_header_and_error_body() {
    let receiver = Receiver::start().await;
    let app = Process::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)]).await;
    let request_id = "bug-report-42";
    let response = app
        .client
        .get(format!(
            "{}/api/v1/tasks/0194f0aa-0000-7000-8000-000000000001",
            app.base
        ))
        .header("x-request-id", request_id)
        .header(
            "traceparent",
            "00-aaaabbbbccccddddeeeeffff00001111-1234567812345678-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-request-id"], request_id);
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
    assert_eq!(trace_id, "aaaabbbbccccddddeeeeffff00001111");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], request_id);

    assert!(
        wait_for(std::time::Duration::from_secs(5), || async {
            !access_lines(&app, request_id).is_empty()
        })
        .await
    );
    let line = &access_lines(&app, request_id)[0];
    assert_eq!(line["trace_id"], trace_id.as_str());
    assert_eq!(line["route"], "/api/v1/tasks/{task_id}");
    assert_eq!(line["status"], 401);
    assert_eq!(line["instance_id"], "proc-instance");

    let server_span = |s: &super::otlp::Received| {
        s.trace_id() == trace_id && s.span.kind == SpanKind::Server as i32
    };
    let spans = receiver.wait_until(server_span).await;
    let server = spans.iter().find(|s| server_span(s)).unwrap();
    assert_eq!(server.attr("request.id").as_deref(), Some(request_id));
    let span_id: String = server
        .span
        .span_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(line["span_id"], span_id.as_str());
}

#[tokio::test]
async fn every_log_line_is_one_json_object_with_the_required_fields() {
    let app = Process::start(&[]).await;
    app.user("fields@example.com", "correct horse battery")
        .await;
    // The log's writer flushes on its own thread: wait (bounded) for the requests' lines.
    wait_for(std::time::Duration::from_secs(5), || async {
        app.log().len() >= 3
    })
    .await;
    let log = app.log();
    assert!(log.len() >= 3, "{log:?}");
    for line in &log {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in [
            "timestamp",
            "level",
            "target",
            "message",
            "instance_id",
            "service",
            "version",
        ] {
            assert!(value.get(key).is_some(), "{key} missing in {line}");
        }
        let ts = value["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "RFC 3339 UTC with milliseconds: {ts}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "{ts}"
        );
    }
    let auth_lines = || {
        app.json_log()
            .into_iter()
            .filter(|l| {
                l["target"] == "tasklight::access"
                    && l["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("/api/v1/auth/"))
            })
            .count()
    };
    assert!(
        wait_for(std::time::Duration::from_secs(5), || async {
            auth_lines() >= 2
        })
        .await
    );
    let access: Vec<Value> = app
        .json_log()
        .into_iter()
        .filter(|l| {
            l["target"] == "tasklight::access"
                && l["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/api/v1/auth/"))
        })
        .collect();
    assert_eq!(
        access.len(),
        2,
        "one access line per request (register, login)"
    );
    for line in &access {
        for key in REQUIRED.iter().chain(&[
            "method",
            "route",
            "path",
            "status",
            "duration_ms",
            "bytes",
            "client_address",
        ]) {
            assert!(line.get(*key).is_some(), "{key} missing in {line}");
        }
    }
}

#[tokio::test]
async fn no_password_token_or_token_hash_reaches_the_logs_or_spans() {
    let receiver = Receiver::start().await;
    let app = Process::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
        ("RUST_LOG", "debug"),
    ])
    .await;
    let password = "Sup3r-secret-passw0rd";
    let (access, refresh) = app.user("secrets@example.com", password).await;
    let refreshed: Value = app
        .client
        .post(format!("{}/api/v1/auth/refresh", app.base))
        .json(&serde_json::json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let me = app
        .client
        .get(format!("{}/api/v1/users/me", app.base))
        .bearer_auth(&access)
        .header("cookie", "session=cookie-secret-value")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // A failed login with the password in a wrong field must not echo it either.
    let _ = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&serde_json::json!({ "email": "secrets@example.com", "pasword": password }))
        .send()
        .await
        .unwrap();
    let spans = receiver
        .wait_until(|s| s.span.name == "GET /api/v1/users/me")
        .await;
    // Every request's lines must be in the log before it is searched: the last one's too.
    assert!(
        wait_for(std::time::Duration::from_secs(5), || async {
            app.json_log().iter().any(|l| {
                l["target"] == "tasklight::access"
                    && l["route"] == "/api/v1/auth/login"
                    && l["status"] == 400
            })
        })
        .await,
        "the last request's access line never reached the log"
    );
    let hashes = [&refresh, &new_refresh].map(|t| hex::encode(Sha256::digest(t.as_bytes())));
    let secrets = [
        password.to_owned(),
        access.clone(),
        refresh.clone(),
        new_refresh.clone(),
        hashes[0].clone(),
        hashes[1].clone(),
        "cookie-secret-value".to_owned(),
        "$argon2id".to_owned(),
    ];
    let log = app.log().join("\n");
    let span_text: String = spans
        .iter()
        .map(|s| s.all_text())
        .collect::<Vec<_>>()
        .join("\n");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "secret {secret:.12}... found in the log"
        );
        assert!(
            !span_text.contains(secret.as_str()),
            "secret {secret:.12}... found in a span"
        );
    }
    assert!(!log.to_ascii_lowercase().contains("bearer "));
}

#[tokio::test]
async fn pretty_format_writes_human_lines() {
    let app = Process::start(&[("LOG_FORMAT", "pretty")]).await;
    let _ = app
        .client
        .get(format!("{}/health/live", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        wait_for(std::time::Duration::from_secs(5), || async {
            app.log().iter().any(|l| l.contains("request completed"))
        })
        .await
    );
    assert!(
        app.log()
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_err())
    );
}
