//! The audit log: every change appends an entry carrying actor, request id and instance id.

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{INSTANCE_ID, TestApp, body, header, problem, spawn_app, str_of};

/// The request id of a successful change, checking its status.
pub(crate) async fn request_id(resp: Response, status: u16) -> (String, Value) {
    let id = header(&resp, "x-request-id");
    (id, body(resp, status).await)
}

pub(crate) async fn entries(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let page = body(app.get(path, Some(token)).await, 200).await;
    page["items"].as_array().expect("items").clone()
}

pub(crate) fn find<'a>(entries: &'a [Value], action: &str, request_id: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["action"] == action && e["request_id"] == request_id)
        .unwrap_or_else(|| {
            panic!("no `{action}` entry with request id {request_id} in {entries:#?}")
        })
}

#[tokio::test]
async fn each_project_change_appends_an_entry_with_the_responses_request_id() {
    let app = spawn_app().await;
    let (owner, other) = futures::join!(app.user(), app.user());
    let (created, project) = request_id(
        app.post(
            "/projects",
            Some(&owner.access),
            &json!({"name": "Audited"}),
        )
        .await,
        201,
    )
    .await;
    let p = str_of(&project, "id");
    let t = owner.access.as_str();
    let (updated, _) = request_id(
        app.patch(
            &format!("/projects/{p}"),
            Some(t),
            &json!({"name": "Renamed"}),
        )
        .await,
        200,
    )
    .await;
    let member_path = format!("/projects/{p}/members/{}", other.id);
    let (added, _) = request_id(
        app.put(&member_path, Some(t), &json!({"role": "viewer"}))
            .await,
        200,
    )
    .await;
    let (changed, _) = request_id(
        app.put(&member_path, Some(t), &json!({"role": "member"}))
            .await,
        200,
    )
    .await;
    let (task_created, task) = request_id(
        app.post(
            &format!("/projects/{p}/tasks"),
            Some(t),
            &json!({"title": "x"}),
        )
        .await,
        201,
    )
    .await;
    let task_path = format!("/tasks/{}", str_of(&task, "id"));
    let (task_updated, _) = request_id(
        app.patch(&task_path, Some(t), &json!({"status": "done"}))
            .await,
        200,
    )
    .await;
    let (task_deleted, _) = request_id(app.delete(&task_path, Some(t)).await, 204).await;
    let (removed, _) = request_id(app.delete(&member_path, Some(t)).await, 204).await;

    let log = entries(&app, &format!("/projects/{p}/audit?limit=100"), t).await;
    let expected = [
        ("project.created", &created, "project"),
        ("project.updated", &updated, "project"),
        ("member.added", &added, "member"),
        ("member.role_changed", &changed, "member"),
        ("task.created", &task_created, "task"),
        ("task.updated", &task_updated, "task"),
        ("task.deleted", &task_deleted, "task"),
        ("member.removed", &removed, "member"),
    ];
    for (action, request_id, _) in &expected {
        let entry = find(&log, action, request_id);
        assert_eq!(entry["actor_id"], owner.id.as_str(), "{entry}");
        assert_eq!(entry["project_id"], p.as_str(), "{entry}");
        assert_eq!(entry["instance_id"], INSTANCE_ID, "{entry}");
        assert!(entry["summary"].is_object(), "{entry}");
        assert!(chrono::DateTime::parse_from_rfc3339(&str_of(entry, "occurred_at")).is_ok());
    }
    for (action, request_id, entity_type) in &expected[..2] {
        let entry = find(&log, action, request_id);
        assert_eq!(
            (entry["entity_type"].as_str(), entry["entity_id"].as_str()),
            (Some(*entity_type), Some(p.as_str()))
        );
    }
    assert_eq!(
        find(&log, "task.created", &task_created)["entity_id"],
        task["id"]
    );
    // Newest first: the last change is the first entry.
    assert_eq!(log[0]["request_id"], removed.as_str(), "{:#?}", log[0]);
    let times: Vec<String> = log.iter().map(|e| str_of(e, "occurred_at")).collect();
    let parsed: Vec<_> = times
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
        .collect();
    assert!(
        parsed.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {times:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_project_audit_filters_by_action_and_entity_type() {
    let app = spawn_app().await;
    let team = app.team().await;
    let t = team.owner.access.as_str();
    let base = format!("/projects/{}/audit", team.project_id);
    let tasks = entries(&app, &format!("{base}?entity_type=task"), t).await;
    assert!(
        !tasks.is_empty() && tasks.iter().all(|e| e["entity_type"] == "task"),
        "{tasks:#?}"
    );
    let added = entries(&app, &format!("{base}?action=member.added"), t).await;
    assert!(added.len() >= 2, "{added:#?}");
    assert!(added.iter().all(|e| e["action"] == "member.added"));
    let page = body(app.get(&format!("{base}?limit=1"), Some(t)).await, 200).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = body(
        app.get(
            &format!("{base}?limit=1&cursor={}", str_of(&page, "next_cursor")),
            Some(t),
        )
        .await,
        200,
    )
    .await;
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    app.stop().await;
}

#[tokio::test]
async fn only_owners_read_a_projects_audit() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/projects/{}/audit", team.project_id);
    problem(app.get(&path, Some(&team.member.access)).await, 403).await;
    problem(app.get(&path, Some(&team.viewer.access)).await, 403).await;
    problem(app.get(&path, Some(&team.outsider.access)).await, 404).await;
    problem(app.get(&path, None).await, 401).await;
    body(app.get(&path, Some(&team.owner.access)).await, 200).await;
    app.stop().await;
}
