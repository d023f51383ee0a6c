//! Sentry: every 5xx and every panic is captured with the request's tags, and a panic in a
//! handler becomes a 500 problem while the server keeps answering. Events go to a test
//! transport installed once in this process, or, for the service as a process, to a stand-in
//! ingest endpoint over HTTP.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use poem::http::StatusCode;
use poem::{Endpoint, Request, Route};
use sentry::protocol::Event;
use tasklight::telemetry::routes::RouteTable;

use crate::helpers::spawn_app;

#[derive(Default)]
struct Capture {
    events: Mutex<Vec<Event<'static>>>,
}

impl sentry::Transport for Capture {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        if let Some(event) = envelope.event() {
            self.events.lock().unwrap().push(event.clone());
        }
    }
}

/// The process's Sentry client, installed once, sending to [`Capture`].
fn captured() -> Arc<Capture> {
    static CAPTURE: OnceLock<Arc<Capture>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Arc::new(Capture::default());
            let guard = sentry::init(
                sentry::ClientOptions::new()
                    .dsn("https://public@sentry.invalid/1")
                    .transport(capture.clone()),
            );
            // `init` binds the client to this thread's hub; the service binds request hubs to
            // the main hub (in the binary, `init` runs on the main thread).
            sentry::Hub::main().bind_client(sentry::Hub::current().client());
            std::mem::forget(guard);
            capture
        })
        .clone()
}

fn events_for(capture: &Capture, request_id: &str) -> Vec<Event<'static>> {
    capture
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.tags.get("request_id").map(String::as_str) == Some(request_id))
        .cloned()
        .collect()
}

async fn call(ep: &impl Endpoint, path: &str, request_id: &str) -> poem::Response {
    let request = Request::builder()
        .uri(path.parse().unwrap())
        .header("x-request-id", request_id)
        .finish();
    ep.get_response(request).await
}

#[tokio::test]
async fn a_panic_becomes_a_500_problem_is_reported_and_the_server_keeps_answering() {
    let capture = captured();
    let app = spawn_app().await;
    let user_id = uuid::Uuid::new_v4();
    let tree = Route::new()
        .at(
            "/boom",
            poem::endpoint::make_sync(move |_| -> &'static str {
                tasklight::telemetry::context::set_user(user_id);
                panic!("handler bug")
            }),
        )
        .at("/fine", poem::endpoint::make_sync(|_| "fine"));
    let routes = RouteTable::from_spec(r#"{"paths":{"/boom":{},"/fine":{}}}"#);
    let ep = tasklight::router::with_middleware(app.server.state.clone(), routes, tree);

    let response = call(&ep, "/boom", "panic-req-1").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.content_type(), Some("application/problem+json"));
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().into_vec().await.unwrap()).unwrap();
    assert_eq!(body["request_id"], "panic-req-1");
    assert!(
        !body.to_string().contains("handler bug"),
        "no panic message in the body"
    );
    assert_eq!(
        call(&ep, "/fine", "after-panic").await.status(),
        StatusCode::OK
    );

    let events = events_for(&capture, "panic-req-1");
    assert_eq!(events.len(), 1, "one event per panic: {events:#?}");
    let event = &events[0];
    assert_eq!(
        event.tags.get("instance_id").map(String::as_str),
        Some("test-instance")
    );
    assert_eq!(event.tags.get("route").map(String::as_str), Some("/boom"));
    assert_eq!(event.tags.get("trace_id").map(String::len), Some(32));
    assert_eq!(
        event.user.as_ref().and_then(|u| u.id.clone()),
        Some(user_id.to_string())
    );
    assert!(
        event
            .user
            .as_ref()
            .is_some_and(|u| u.email.is_none() && u.ip_address.is_none())
    );
}

#[tokio::test]
async fn a_server_error_is_reported_with_its_route_and_ids() {
    let capture = captured();
    let app = spawn_app().await;
    let tree = Route::new().at(
        "/fail/:id",
        poem::endpoint::make_sync(|_| StatusCode::SERVICE_UNAVAILABLE),
    );
    let routes = RouteTable::from_spec(r#"{"paths":{"/fail/{id}":{}}}"#);
    let ep = tasklight::router::with_middleware(app.server.state.clone(), routes, tree);
    let response = call(&ep, "/fail/123", "server-error-1").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let trace_id = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_owned();

    let events = events_for(&capture, "server-error-1");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        events[0].tags.get("route").map(String::as_str),
        Some("/fail/{id}")
    );
    assert_eq!(events[0].tags.get("trace_id"), Some(&trace_id));
    assert!(
        events[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("503"))
    );
    assert!(events_for(&capture, "no-such-request").is_empty());
}

/// The events a stand-in Sentry ingest endpoint received: each envelope's event payload.
fn ingested(ingest: &crate::helpers::receiver::Receiver) -> Vec<serde_json::Value> {
    ingest
        .received()
        .iter()
        .flat_map(|r| {
            r.body
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v.get("event_id").is_some() && v.get("tags").is_some())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The service as a process, on this run's database (SQLite or PostgreSQL), sending to a
/// stand-in Sentry ingest endpoint: writes that fail in the database, behind the service's back,
/// answer clean 500s, leave nothing half-written, and reach Sentry as exceptions whose chain
/// names the cause without the values, one fingerprint per cause, with the request's
/// OpenTelemetry trace and span as the event's trace context.
#[tokio::test]
async fn failed_writes_reach_sentry_as_exceptions_grouped_by_cause_in_their_trace() {
    use crate::helpers::{JWT_SECRET, PASSWORD, TestDb, receiver::Receiver, unique_email};
    use crate::telemetry::process::{Process, wait_for};
    use serde_json::{Value, json};

    let ingest = Receiver::start().await;
    let db = TestDb::fresh().await;
    let dsn = format!("http://public@{}/1", ingest.addr);
    let process = Process::start(&[
        ("SENTRY_DSN", dsn.as_str()),
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", JWT_SECRET),
    ])
    .await;
    let email = unique_email();
    let (access, _) = process.user(&email, PASSWORD).await;
    let client = &process.client;
    let project = process.project(&access, "Sentry probe").await;
    let tasks = format!("{}/api/v1/projects/{project}/tasks", process.base);
    // Answers (status, request id, trace id, span id) for a new task called `title`.
    let create = |title: String| {
        let request = client
            .post(&tasks)
            .bearer_auth(&access)
            .json(&json!({ "title": title }));
        async move {
            let response = request.send().await.unwrap();
            let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
            let traceparent = header("traceparent");
            let parts: Vec<&str> = traceparent.split('-').collect();
            let answer = (
                response.status().as_u16(),
                header("x-request-id"),
                parts[1].to_owned(),
                parts[2].to_owned(),
            );
            let body: Value = response.json().await.unwrap();
            if answer.0 == 500 {
                assert_eq!(body["request_id"], answer.1.as_str(), "{body}");
                assert!(!body.to_string().contains("task_activity"), "{body}");
            }
            answer
        }
    };
    assert_eq!(create("kept".into()).await.0, 201);

    // Cause A: the activity table is gone.
    db.execute("ALTER TABLE task_activity RENAME TO task_activity_gone")
        .await;
    let a = create("secret-title-a-7f3e".into()).await;
    db.execute("ALTER TABLE task_activity_gone RENAME TO task_activity")
        .await;
    // Cause B, twice with different values: the audit log is gone.
    db.execute("ALTER TABLE audit_log RENAME TO audit_log_gone")
        .await;
    let b1 = create("secret-title-b1-91c2".into()).await;
    let b2 = create("secret-title-b2-04d8".into()).await;
    db.execute("ALTER TABLE audit_log_gone RENAME TO audit_log")
        .await;
    for answer in [&a, &b1, &b2] {
        assert_eq!(answer.0, 500, "{answer:?}");
    }

    // Nothing half-written: only the first task exists, and writing works again.
    let listed = process
        .json(
            reqwest::Method::GET,
            &format!("/projects/{project}/tasks"),
            Some(&access),
            None,
        )
        .await;
    let titles: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["kept"]);
    assert_eq!(create("after".into()).await.0, 201);

    let arrived = wait_for(Duration::from_secs(15), || async {
        ingested(&ingest).len() >= 3
    })
    .await;
    let events = ingested(&ingest);
    assert!(
        arrived,
        "three events within 15 s: {events:#?}; {} requests received",
        ingest.received().len()
    );
    assert_eq!(events.len(), 3, "one event per failed request: {events:#?}");
    let event_of = |request_id: &str| {
        events
            .iter()
            .find(|e| e["tags"]["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no event for {request_id}: {events:#?}"))
    };
    let chain = |event: &Value| -> Vec<(String, String)> {
        event["exception"]["values"]
            .as_array()
            .expect("an exception, not a message")
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    for (answer, table) in [
        (&a, "task_activity"),
        (&b1, "audit_log"),
        (&b2, "audit_log"),
    ] {
        let event = event_of(&answer.1);
        let text = event.to_string();
        for secret in [
            "secret-title",
            email.as_str(),
            access.as_str(),
            "Sentry probe",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(
            event["transaction"],
            "POST /api/v1/projects/{project_id}/tasks"
        );
        assert_eq!(
            event["tags"]["route"],
            "/api/v1/projects/{project_id}/tasks"
        );
        assert_eq!(event["tags"]["instance_id"], "proc-instance");
        assert_eq!(event["tags"]["trace_id"], answer.2.as_str());
        assert_eq!(event["contexts"]["trace"]["trace_id"], answer.2.as_str());
        assert_eq!(event["contexts"]["trace"]["span_id"], answer.3.as_str());
        let causes = chain(event);
        let (root_kind, root) = causes.first().expect("a cause");
        assert_eq!(root_kind, "sqlx::Error::Database", "{causes:?}");
        assert!(root.contains(table), "{root} names {table}");
        assert!(
            causes.iter().all(|(kind, _)| !kind.is_empty()),
            "{causes:?}"
        );
    }
    let fingerprint =
        |answer: &(u16, String, String, String)| event_of(&answer.1)["fingerprint"].clone();
    assert_eq!(fingerprint(&b1), fingerprint(&b2), "same cause, one issue");
    assert_ne!(
        fingerprint(&a),
        fingerprint(&b1),
        "another cause, another issue"
    );
    process.stop();
    db.cleanup().await;
}
