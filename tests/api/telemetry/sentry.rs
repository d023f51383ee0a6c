//! Sentry: every 5xx and every panic is captured with the request's tags, and a panic in a
//! handler becomes a 500 problem while the server keeps answering. Events go to a test
//! transport installed once in this process.

use std::sync::{Arc, Mutex, OnceLock};

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
