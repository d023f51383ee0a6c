//! `Idempotency-Key` on the creating POSTs: a retry replays the first answer, a different
//! request with the same key is a 422, concurrent retries create one resource, keys belong to
//! their user and expire after 24 hours. Across instances: `cluster.rs`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn post_with_key(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let response = app
        .req(Method::POST, path, Some(token))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, response.json().await.unwrap())
}

async fn project_count(app: &TestApp, token: &str) -> usize {
    let list: Value = app
        .get("/projects?limit=100", Some(token))
        .await
        .json()
        .await
        .unwrap();
    list["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retry_with_the_same_key_replays_the_first_answer_and_creates_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    let request = json!({"name": "Launch", "description": "once"});
    let first = post_with_key(&app, "/projects", &user.access, "key-1", &request).await;
    assert_eq!(first.0, 201);
    // Same request, keys reordered and spaced differently: still the same request.
    let again = json!({"description": "once", "name": "Launch"});
    let second = post_with_key(&app, "/projects", &user.access, "key-1", &again).await;
    assert_eq!(second, first, "status, Location and body are replayed");
    assert_eq!(project_count(&app, &user.access).await, 1);
    // A new key is a new request.
    let third = post_with_key(&app, "/projects", &user.access, "key-2", &request).await;
    assert_eq!(third.0, 201);
    assert_ne!(third.2["id"], first.2["id"]);
    assert_eq!(project_count(&app, &user.access).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_a_422_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    let first = post_with_key(&app, "/projects", &user.access, "k", &json!({"name": "A"})).await;
    assert_eq!(first.0, 201);
    let (status, _, body) =
        post_with_key(&app, "/projects", &user.access, "k", &json!({"name": "B"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["type"], "urn:tasklight:problem:idempotency-key-reused");
    assert!(body["detail"].as_str().unwrap().contains("Idempotency-Key"));
    // The same key on another operation is a different request too.
    let project_id = first.2["id"].as_str().unwrap();
    let (status, _, _) = post_with_key(
        &app,
        &format!("/projects/{project_id}/tasks"),
        &user.access,
        "k",
        &json!({"title": "A"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(project_count(&app, &user.access).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_exactly_one_task() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project = app.create_project(&user.access, "Race").await;
    let path = format!("/projects/{}/tasks", project["id"].as_str().unwrap());
    let request = json!({"title": "only once", "tags": ["race"]});
    let answers = futures::future::join_all(
        (0..12).map(|_| post_with_key(&app, &path, &user.access, "race-key", &request)),
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.0, 201, "{:?}", answer.2);
        assert_eq!(answer, &answers[0]);
    }
    let list: Value = app
        .get(&path, Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The replayed answer carries the ETag of the created version.
    let replay = app
        .req(Method::POST, &path, Some(&user.access))
        .header("Idempotency-Key", "race-key")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["etag"], "\"v1\"");
    app.stop().await;
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let request = json!({"name": "Same"});
    let a = post_with_key(&app, "/projects", &alice.access, "shared", &request).await;
    let b = post_with_key(&app, "/projects", &bob.access, "shared", &request).await;
    assert_eq!((a.0, b.0), (201, 201));
    assert_ne!(a.2["id"], b.2["id"]);
    app.stop().await;
}

#[tokio::test]
async fn malformed_keys_are_refused_naming_the_header() {
    let app = spawn_app().await;
    let user = app.user().await;
    for key in ["with space", &"k".repeat(256)] {
        let (status, _, body) =
            post_with_key(&app, "/projects", &user.access, key, &json!({"name": "x"})).await;
        assert_eq!(status, 400, "{key}");
        assert_eq!(body["errors"][0]["field"], "Idempotency-Key", "{body}");
    }
    assert_eq!(project_count(&app, &user.access).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn keys_expire_after_24_hours() {
    let app = spawn_app().await;
    let user = app.user().await;
    let request = json!({"name": "Daily"});
    let first = post_with_key(&app, "/projects", &user.access, "day", &request).await;
    let mut store = app.server.state.domain.read().await.unwrap();
    let now = tasklight::db::now();
    let almost = now + chrono::Duration::hours(24) - chrono::Duration::minutes(1);
    assert_eq!(
        store.delete_expired_idempotency_keys(almost).await.unwrap(),
        0
    );
    assert_eq!(
        post_with_key(&app, "/projects", &user.access, "day", &request).await,
        first
    );
    let later = now + chrono::Duration::hours(24) + chrono::Duration::seconds(1);
    assert_eq!(
        store.delete_expired_idempotency_keys(later).await.unwrap(),
        1
    );
    drop(store);
    let after = post_with_key(&app, "/projects", &user.access, "day", &request).await;
    assert_eq!(after.0, 201);
    assert_ne!(after.2["id"], first.2["id"]);
    app.stop().await;
}
