//! API3:2023 Broken Object Property Level Authorization: a client cannot set fields the server
//! owns (ids, owners, roles, versions, timestamps): such fields are refused with a 400 naming
//! them; and every response carries exactly the properties its schema declares, so nothing
//! internal (a password hash, a token hash, a session) leaks through an extra field.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// The property names of the schema `name` in the served document.
fn declared(spec: &Value, name: &str) -> BTreeSet<String> {
    spec["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// The body of a successful answer, with exactly the properties of `schema` (nullable ones
/// included as `null`).
async fn exactly(spec: &Value, schema: &str, response: reqwest::Response) -> Value {
    assert!(
        response.status().is_success(),
        "{schema}: {}",
        response.status()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(keys(&body), declared(spec, schema), "{schema}: {body}");
    body
}

async fn refused_naming(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
    field: &str,
) {
    let response = app
        .send(method.clone(), path, Some(token), Some(&body))
        .await;
    assert_eq!(response.status(), 400, "{method} {path} with {field}");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], field, "{problem}");
}

#[tokio::test]
async fn api3_server_owned_fields_cannot_be_set_by_the_client() {
    let app = spawn_app().await;
    let team = app.team().await;
    let other = uuid::Uuid::now_v7().to_string();
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let register = json!({"email": "mass@example.com", "password": "long enough password", "display_name": "M", "role": "admin"});
    let response = app.post("/auth/register", None, &register).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["errors"][0]["field"],
        "role"
    );
    let owner = &team.owner.access;
    for (method, path, body, field) in [
        (
            patch.clone(),
            "/users/me".to_owned(),
            json!({"role": "admin"}),
            "role",
        ),
        (
            patch.clone(),
            "/users/me".to_owned(),
            json!({"disabled": false}),
            "disabled",
        ),
        (
            post.clone(),
            "/projects".to_owned(),
            json!({"name": "P", "created_by": other}),
            "created_by",
        ),
        (
            post.clone(),
            "/projects".to_owned(),
            json!({"name": "P", "id": other}),
            "id",
        ),
        (
            patch.clone(),
            format!("/projects/{}", team.project_id),
            json!({"role": "owner"}),
            "role",
        ),
        (
            post.clone(),
            format!("/projects/{}/tasks", team.project_id),
            json!({"title": "T", "version": 7}),
            "version",
        ),
        (
            patch.clone(),
            format!("/tasks/{}", team.task_id),
            json!({"project_id": other}),
            "project_id",
        ),
        (
            patch.clone(),
            format!("/tasks/{}", team.task_id),
            json!({"created_at": "2020-01-01T00:00:00Z"}),
            "created_at",
        ),
    ] {
        refused_naming(&app, method, &path, owner, body, field).await;
    }
    // Nothing changed: the task is still at version 1 in its project.
    let task: Value = app
        .get(&format!("/tasks/{}", team.task_id), Some(owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(task["version"], 1);
    assert_eq!(task["project_id"], team.project_id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn api3_responses_carry_exactly_their_declared_properties() {
    let app = spawn_app().await;
    let spec = app.spec().await;
    let team = app.team().await;
    let owner = Some(team.owner.access.as_str());
    exactly(&spec, "User", app.get("/users/me", owner).await).await;
    exactly(
        &spec,
        "TokenPair",
        app.login_response(&team.owner.email, crate::helpers::PASSWORD)
            .await,
    )
    .await;
    exactly(
        &spec,
        "Project",
        app.get(&format!("/projects/{}", team.project_id), owner)
            .await,
    )
    .await;
    exactly(
        &spec,
        "Task",
        app.get(&format!("/tasks/{}", team.task_id), owner).await,
    )
    .await;
    for (path, page, item) in [
        ("/projects".to_owned(), "ProjectPage", "Project"),
        (
            format!("/projects/{}/tasks", team.project_id),
            "TaskPage",
            "Task",
        ),
        (
            format!("/projects/{}/members", team.project_id),
            "MemberPage",
            "Member",
        ),
        (
            format!("/projects/{}/audit", team.project_id),
            "AuditPage",
            "AuditEntry",
        ),
    ] {
        let body = exactly(&spec, page, app.get(&path, owner).await).await;
        let items = body["items"].as_array().unwrap();
        assert!(!items.is_empty(), "{path}");
        for entry in items {
            assert_eq!(keys(entry), declared(&spec, item), "{path}: {entry}");
        }
    }
    let admin = app.admin().await;
    let users = exactly(
        &spec,
        "UserPage",
        app.get("/admin/users", Some(&admin.access)).await,
    )
    .await;
    for user in users["items"].as_array().unwrap() {
        assert_eq!(keys(user), declared(&spec, "User"), "{user}");
    }
    app.stop().await;
}
