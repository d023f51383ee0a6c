//! Every documented limit: a value just past it is a 400 naming the field; a value at it passes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, body, fields, invalid, problem, spawn_app, str_of, unique_email};

fn tags(n: usize) -> Value {
    json!((0..n).map(|i| format!("tag{i}")).collect::<Vec<_>>())
}

#[tokio::test]
async fn registration_refuses_bad_emails_passwords_and_display_names() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "", "password": PASSWORD, "display_name": "x"}),
            "email",
        ),
        (
            json!({"email": "no-at-sign", "password": PASSWORD, "display_name": "x"}),
            "email",
        ),
        (
            json!({"email": "a@", "password": PASSWORD, "display_name": "x"}),
            "email",
        ),
        (
            json!({"email": "@example.com", "password": PASSWORD, "display_name": "x"}),
            "email",
        ),
        (
            json!({"email": "a b@example.com", "password": PASSWORD, "display_name": "x"}),
            "email",
        ),
        (
            json!({"email": unique_email(), "password": "eleven-char", "display_name": "x"}),
            "password",
        ),
        (
            json!({"email": unique_email(), "password": "p".repeat(129), "display_name": "x"}),
            "password",
        ),
        (
            json!({"email": unique_email(), "password": PASSWORD, "display_name": ""}),
            "display_name",
        ),
        (
            json!({"email": unique_email(), "password": PASSWORD, "display_name": "   "}),
            "display_name",
        ),
        (
            json!({"email": unique_email(), "password": PASSWORD, "display_name": "d".repeat(101)}),
            "display_name",
        ),
    ];
    for (request, field) in cases {
        invalid(app.post("/auth/register", None, &request).await, field).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn registration_accepts_values_exactly_at_the_limits() {
    let app = spawn_app().await;
    let shortest = app
        .register(&unique_email(), "twelve-chars", &"d".repeat(100))
        .await;
    body(shortest, 201).await;
    let longest = app.register(&unique_email(), &"p".repeat(128), "é").await;
    assert_eq!(body(longest, 201).await["display_name"], "é");
    app.stop().await;
}

#[tokio::test]
async fn profile_updates_refuse_bad_display_names_and_emails() {
    let app = spawn_app().await;
    let user = app.user().await;
    for (request, field) in [
        (json!({"display_name": ""}), "display_name"),
        (json!({"display_name": "d".repeat(101)}), "display_name"),
        (
            json!({"email": "not-an-email", "current_password": PASSWORD}),
            "email",
        ),
    ] {
        invalid(
            app.patch("/users/me", Some(&user.access), &request).await,
            field,
        )
        .await;
    }
    let ok = json!({"display_name": "d".repeat(100)});
    body(app.patch("/users/me", Some(&user.access), &ok).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn projects_refuse_names_over_100_and_descriptions_over_2000_characters() {
    let app = spawn_app().await;
    let user = app.user().await;
    let token = Some(user.access.as_str());
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "n".repeat(101)}), "name"),
        (
            json!({"name": "ok", "description": "d".repeat(2001)}),
            "description",
        ),
        (json!({"name": 42}), "name"),
    ];
    for (request, field) in &cases {
        invalid(app.post("/projects", token, request).await, field).await;
    }
    let at_limit = json!({"name": "n".repeat(100), "description": "é".repeat(2000)});
    let project = body(app.post("/projects", token, &at_limit).await, 201).await;
    let path = format!("/projects/{}", str_of(&project, "id"));
    for (request, field) in &cases {
        invalid(app.patch(&path, token, request).await, field).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn tasks_refuse_every_out_of_range_field_on_create_and_update() {
    let app = spawn_app().await;
    let user = app.user().await;
    let token = Some(user.access.as_str());
    let project = str_of(&app.create_project(&user.access, "Limits").await, "id");
    let cases = [
        (json!({"title": ""}), "title"),
        (json!({"title": "t".repeat(201)}), "title"),
        (json!({"description": "d".repeat(10_001)}), "description"),
        (json!({"status": "open"}), "status"),
        (json!({"priority": "critical"}), "priority"),
        (json!({"due_at": "next tuesday"}), "due_at"),
        (json!({"assignee_id": "not-a-uuid"}), "assignee_id"),
        (json!({"tags": tags(21)}), "tags"),
        (json!({"tags": ["ok", "t".repeat(41)]}), "tags[1]"),
        (json!({"tags": ["ok", "ok2", "Upper"]}), "tags[2]"),
        (json!({"tags": ["with space"]}), "tags[0]"),
        (json!({"tags": ["ok", "sl/ash"]}), "tags[1]"),
        (json!({"tags": ["ok", "ünï"]}), "tags[1]"),
        (json!({"tags": [""]}), "tags[0]"),
    ];
    let create = format!("/projects/{project}/tasks");
    for (change, field) in &cases {
        let mut request = json!({"title": "valid"});
        request
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        invalid(app.post(&create, token, &request).await, field).await;
    }
    let at_limit = json!({"title": "t".repeat(200), "description": "é".repeat(10_000),
        "tags": (0..20).map(|i| format!("{i:0>40}")).collect::<Vec<_>>()});
    let task = app.create_task(&user.access, &project, at_limit).await;
    assert_eq!(task["tags"].as_array().unwrap().len(), 20);
    let path = format!("/tasks/{}", str_of(&task, "id"));
    for (change, field) in &cases {
        invalid(app.patch(&path, token, change).await, field).await;
    }
    let unchanged = body(app.get(&path, token).await, 200).await;
    assert_eq!(unchanged["version"], 1);
    app.stop().await;
}

#[tokio::test]
async fn list_parameters_out_of_range_name_the_parameter() {
    let app = spawn_app().await;
    let user = app.user().await;
    let token = Some(user.access.as_str());
    let project = str_of(&app.create_project(&user.access, "Params").await, "id");
    let tasks = format!("/projects/{project}/tasks");
    let cases = [
        (format!("{tasks}?limit=0"), "limit"),
        (format!("{tasks}?limit=101"), "limit"),
        (format!("{tasks}?limit=ten"), "limit"),
        (format!("{tasks}?sort=title"), "sort"),
        (format!("{tasks}?order=up"), "order"),
        (format!("{tasks}?status=open"), "status"),
        (format!("{tasks}?priority=critical"), "priority"),
        (format!("{tasks}?assignee_id=nobody"), "assignee_id"),
        (format!("{tasks}?due_before=soon"), "due_before"),
        (format!("{tasks}?cursor=not-a-cursor"), "cursor"),
        ("/projects?limit=0".to_owned(), "limit"),
        ("/projects?limit=101".to_owned(), "limit"),
        (format!("/projects/{project}/members?limit=101"), "limit"),
        (format!("/projects/{project}/audit?limit=0"), "limit"),
    ];
    for (path, field) in cases {
        invalid(app.get(&path, token).await, field).await;
    }
    body(app.get(&format!("{tasks}?limit=1"), token).await, 200).await;
    body(
        app.get(&format!("{tasks}?limit=100&sort=due_at&order=desc"), token)
            .await,
        200,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn admin_list_parameters_out_of_range_name_the_parameter() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let token = Some(admin.access.as_str());
    for (path, field) in [
        ("/admin/users?limit=0", "limit"),
        ("/admin/users?limit=101", "limit"),
        ("/admin/users?role=superuser", "role"),
        ("/admin/users?disabled=maybe", "disabled"),
        ("/admin/users?cursor=garbage", "cursor"),
        ("/admin/audit?limit=101", "limit"),
        ("/admin/audit?project_id=nope", "project_id"),
        ("/admin/audit?actor_id=nope", "actor_id"),
    ] {
        invalid(app.get(path, token).await, field).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_id_in_a_path_is_a_400_naming_the_path_parameter() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let token = Some(admin.access.as_str());
    let project = str_of(&app.create_project(&admin.access, "Ids").await, "id");
    let members = format!("/projects/{project}/members/not-a-uuid");
    let mut wrong = Vec::new();
    for (method, path, request, field) in [
        (Method::GET, "/tasks/not-a-uuid", None, "task_id"),
        (Method::GET, "/projects/not-a-uuid", None, "project_id"),
        (
            Method::GET,
            "/projects/not-a-uuid/tasks",
            None,
            "project_id",
        ),
        (
            Method::PUT,
            &members,
            Some(json!({"role": "member"})),
            "user_id",
        ),
        (
            Method::PATCH,
            "/admin/users/not-a-uuid",
            Some(json!({"disabled": false})),
            "user_id",
        ),
    ] {
        let problem = problem(app.send(method, path, token, request.as_ref()).await, 400).await;
        if !fields(&problem).iter().any(|f| f == field) {
            wrong.push(format!(
                "{path}: expected `{field}`, got {:?}",
                fields(&problem)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "path parameters misnamed:\n{}",
        wrong.join("\n")
    );
    app.stop().await;
}
