//! Projects: create, list mine, read, update, delete.

use serde_json::json;

use crate::helpers::{body, header, ids, problem, spawn_app, str_of};

#[tokio::test]
async fn creating_a_project_returns_201_with_its_location_and_makes_the_caller_owner() {
    let app = spawn_app().await;
    let user = app.user().await;
    let resp = app
        .post("/projects", Some(&user.access), &json!({"name": "Apollo"}))
        .await;
    let location = header(&resp, "location");
    let project = body(resp, 201).await;
    let id = str_of(&project, "id");
    assert_eq!(location, format!("/api/v1/projects/{id}"));
    assert_eq!(project["name"], "Apollo");
    assert_eq!(project["description"], "");
    assert_eq!(project["created_by"], user.id.as_str());
    assert_eq!(project["role"], "owner");
    let fetched = body(
        app.get(&format!("/projects/{id}"), Some(&user.access))
            .await,
        200,
    )
    .await;
    assert_eq!(fetched, project);
    app.stop().await;
}

#[tokio::test]
async fn listing_projects_returns_only_those_the_caller_belongs_to_with_their_role() {
    let app = spawn_app().await;
    let (alice, bob) = futures::join!(app.user(), app.user());
    let a = str_of(&app.create_project(&alice.access, "Alice's").await, "id");
    let b = str_of(&app.create_project(&bob.access, "Bob's").await, "id");
    let alice_list = body(app.get("/projects", Some(&alice.access)).await, 200).await;
    assert_eq!(ids(&alice_list), vec![a.clone()]);
    assert_eq!(alice_list["next_cursor"], serde_json::Value::Null);
    app.add_member(&alice.access, &a, &bob.id, "viewer").await;
    let bob_list = body(app.get("/projects", Some(&bob.access)).await, 200).await;
    let mut bob_ids = ids(&bob_list);
    bob_ids.sort();
    let mut expected = vec![a.clone(), b];
    expected.sort();
    assert_eq!(bob_ids, expected);
    let shared = bob_list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == a.as_str())
        .unwrap();
    assert_eq!(shared["role"], "viewer");
    app.stop().await;
}

#[tokio::test]
async fn the_project_list_is_paginated() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut created = Vec::new();
    for name in ["One", "Two", "Three"] {
        created.push(str_of(&app.create_project(&user.access, name).await, "id"));
    }
    let first = body(app.get("/projects?limit=2", Some(&user.access)).await, 200).await;
    assert_eq!(ids(&first).len(), 2);
    let cursor = str_of(&first, "next_cursor");
    let second = body(
        app.get(
            &format!("/projects?limit=2&cursor={cursor}"),
            Some(&user.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(second["next_cursor"], serde_json::Value::Null);
    let mut seen = [ids(&first), ids(&second)].concat();
    seen.sort();
    created.sort();
    assert_eq!(seen, created);
    app.stop().await;
}

#[tokio::test]
async fn the_owner_updates_name_and_description() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project = app.create_project(&user.access, "Old name").await;
    let path = format!("/projects/{}", str_of(&project, "id"));
    let change = json!({"name": "New name", "description": "Now with a description"});
    let updated = body(app.patch(&path, Some(&user.access), &change).await, 200).await;
    assert_eq!(updated["name"], "New name");
    assert_eq!(updated["description"], "Now with a description");
    assert_eq!(updated["created_at"], project["created_at"]);
    let only_name = body(
        app.patch(&path, Some(&user.access), &json!({"name": "Newer"}))
            .await,
        200,
    )
    .await;
    assert_eq!(only_name["description"], "Now with a description");
    let fetched = body(app.get(&path, Some(&user.access)).await, 200).await;
    assert_eq!(fetched["name"], "Newer");
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_project_removes_it_and_its_tasks() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project_id = str_of(&app.create_project(&user.access, "Doomed").await, "id");
    let task = app
        .create_task(&user.access, &project_id, json!({"title": "Goes too"}))
        .await;
    let path = format!("/projects/{project_id}");
    body(app.delete(&path, Some(&user.access)).await, 204).await;
    problem(app.get(&path, Some(&user.access)).await, 404).await;
    problem(
        app.get(
            &format!("/tasks/{}", str_of(&task, "id")),
            Some(&user.access),
        )
        .await,
        404,
    )
    .await;
    problem(
        app.get(&format!("{path}/tasks"), Some(&user.access)).await,
        404,
    )
    .await;
    let list = body(app.get("/projects", Some(&user.access)).await, 200).await;
    assert!(ids(&list).is_empty(), "{list}");
    problem(app.delete(&path, Some(&user.access)).await, 404).await;
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_project_returns_404() {
    let app = spawn_app().await;
    let user = app.user().await;
    let path = format!("/projects/{}", uuid::Uuid::new_v4());
    problem(app.get(&path, Some(&user.access)).await, 404).await;
    problem(
        app.patch(&path, Some(&user.access), &json!({"name": "x"}))
            .await,
        404,
    )
    .await;
    problem(app.delete(&path, Some(&user.access)).await, 404).await;
    problem(
        app.get(&format!("{path}/tasks"), Some(&user.access)).await,
        404,
    )
    .await;
    app.stop().await;
}
