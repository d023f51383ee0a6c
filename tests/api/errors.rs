//! Error answers: always problem+json with the request id, 4xx for client mistakes, never 500.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, fields, header, invalid, names, problem, spawn_app, str_of};

async fn post_raw(
    app: &TestApp,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let req = app
        .req(Method::POST, path, Some(token))
        .header("content-type", content_type)
        .body(body);
    req.send().await.expect("an answer")
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem_with_the_request_id() {
    let app = spawn_app().await;
    for path in ["/api/v1/no-such-thing", "/nothing/here", "/api/v2/projects"] {
        let problem = problem(app.get(path, None).await, 404).await;
        assert!(str_of(&problem, "request_id").len() >= 8, "{problem}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_safe_incoming_request_id_is_echoed_and_an_unsafe_one_replaced() {
    let app = spawn_app().await;
    let resp = app
        .req(Method::GET, "/nope", None)
        .header("X-Request-Id", "client-id_1.2")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-request-id"), "client-id_1.2");
    assert_eq!(problem(resp, 404).await["request_id"], "client-id_1.2");
    let resp = app
        .req(Method::GET, "/health/live", None)
        .header("X-Request-Id", "bad id<script>")
        .send()
        .await
        .unwrap();
    let id = header(&resp, "x-request-id");
    assert!(
        !id.is_empty() && !id.contains(' ') && !id.contains('<'),
        "{id}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = spawn_app().await;
    let user = app.user().await;
    problem(app.delete("/users/me", Some(&user.access)).await, 405).await;
    problem(
        app.send(Method::PUT, "/auth/login", None, Some(&json!({})))
            .await,
        405,
    )
    .await;
    problem(
        app.send(Method::POST, "/health/live", None, None).await,
        405,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_problem() {
    let app = spawn_app().await;
    let user = app.user().await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let resp = post_raw(
            &app,
            "/projects",
            &user.access,
            content_type,
            b"{\"name\":\"x\"}".to_vec(),
        )
        .await;
        problem(resp, 415).await;
    }
    let no_type = app
        .req(Method::POST, "/auth/login", None)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = no_type.status().as_u16();
    assert!(status == 415 || status == 400, "no content type: {status}");
    problem(no_type, status).await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_400_problem_naming_the_body() {
    let app = spawn_app().await;
    let user = app.user().await;
    for raw in [
        "not json",
        "{\"name\": ",
        "[1, 2]",
        "\"just a string\"",
        "",
        "{\"name\":\"x\"} trailing",
    ] {
        let resp = post_raw(
            &app,
            "/projects",
            &user.access,
            "application/json",
            raw.as_bytes().to_vec(),
        )
        .await;
        let problem = problem(resp, 400).await;
        assert!(!fields(&problem).is_empty(), "{raw:?}: {problem}");
    }
    let resp = post_raw(
        &app,
        "/projects",
        &user.access,
        "application/json",
        b"not json".to_vec(),
    )
    .await;
    invalid(resp, "body").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_missing_fields_are_400_problems_naming_them() {
    let app = spawn_app().await;
    let user = app.user().await;
    let token = Some(user.access.as_str());
    names(
        app.post("/projects", token, &json!({"name": "x", "colour": "red"}))
            .await,
        "colour",
    )
    .await;
    names(
        app.post("/projects", token, &json!({"description": "no name"}))
            .await,
        "name",
    )
    .await;
    names(
        app.post("/auth/login", None, &json!({"email": "a@b.co"}))
            .await,
        "password",
    )
    .await;
    let project = app.create_project(&user.access, "Fields").await;
    let tasks = format!("/projects/{}/tasks", str_of(&project, "id"));
    names(
        app.post(&tasks, token, &json!({"title": "x", "sneaky": true}))
            .await,
        "sneaky",
    )
    .await;
    names(
        app.post(&tasks, token, &json!({"status": "todo"})).await,
        "title",
    )
    .await;
    names(
        app.patch("/users/me", token, &json!({"role": "admin"}))
            .await,
        "role",
    )
    .await;
    let me = crate::helpers::body(app.get("/users/me", token).await, 200).await;
    assert_eq!(me["role"], "user");
    app.stop().await;
}

#[tokio::test]
async fn wrong_types_are_400_problems_naming_the_field() {
    let app = spawn_app().await;
    let user = app.user().await;
    let token = Some(user.access.as_str());
    let project = app.create_project(&user.access, "Types").await;
    let tasks = format!("/projects/{}/tasks", str_of(&project, "id"));
    for (request, field) in [
        (json!({"title": 5}), "title"),
        (json!({"title": "x", "tags": "bug"}), "tags"),
        (json!({"title": "x", "tags": ["ok", 7]}), "tags[1]"),
        (json!({"title": "x", "due_at": 1_700_000_000}), "due_at"),
        (json!({"title": "x", "priority": 3}), "priority"),
        (json!({"title": "x", "assignee_id": 42}), "assignee_id"),
        (json!({"title": "x", "description": ["a"]}), "description"),
        (json!({"title": null}), "title"),
    ] {
        invalid(app.post(&tasks, token, &request).await, field).await;
    }
    invalid(
        app.post(
            "/auth/register",
            None,
            &json!({"email": 1, "password": "x", "display_name": "y"}),
        )
        .await,
        "email",
    )
    .await;
    invalid(
        app.post("/auth/refresh", None, &json!({"refresh_token": 123}))
            .await,
        "refresh_token",
    )
    .await;
    app.stop().await;
}
