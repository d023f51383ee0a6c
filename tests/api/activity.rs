//! A task's activity (`GET /tasks/{id}/activity`): creation and each changed field with its old
//! and new value, the actor and the request id; newest first; every member reads it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{body, problem, spawn_app, str_of};

fn entries(page: &Value) -> Vec<Value> {
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn each_changed_field_is_an_entry_with_its_old_and_new_value_actor_and_request_id() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let activity = format!("{path}/activity");
    let changed = app
        .req(Method::PATCH, &path, Some(&team.member.access))
        .header("X-Request-Id", "activity-test-1")
        .json(
            &json!({"title": "Renamed", "status": "in_progress", "priority": "medium",
                      "assignee_id": team.viewer.id, "tags": ["b", "a"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    // The same values again change nothing, and leave no entry.
    let same = app
        .patch(
            &path,
            Some(&team.member.access),
            &json!({"title": "Renamed", "priority": "medium"}),
        )
        .await;
    assert_eq!(same.status(), 200);

    let page = body(app.get(&activity, Some(&team.viewer.access)).await, 200).await;
    let items = entries(&page);
    // Created, then four fields (priority was already `medium`).
    assert_eq!(items.len(), 5, "{page}");
    let created = items.last().unwrap();
    assert_eq!(created["action"], "created");
    assert_eq!(created["field"], Value::Null);
    assert_eq!(created["new_value"]["title"], "First task");
    assert_eq!(created["actor_id"], team.owner.id.as_str());
    let updates = &items[..4];
    let change = |field: &str| {
        updates
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("no entry for {field}: {page}"))
            .clone()
    };
    for entry in updates {
        assert_eq!(entry["action"], "updated");
        assert_eq!(entry["actor_id"], team.member.id.as_str());
        assert_eq!(entry["request_id"], "activity-test-1");
        assert_eq!(entry["task_id"], team.task_id.as_str());
        assert!(chrono::DateTime::parse_from_rfc3339(&str_of(entry, "occurred_at")).is_ok());
    }
    assert_eq!(change("title")["old_value"], "First task");
    assert_eq!(change("title")["new_value"], "Renamed");
    assert_eq!(change("status")["old_value"], "todo");
    assert_eq!(change("status")["new_value"], "in_progress");
    assert_eq!(change("assignee_id")["old_value"], Value::Null);
    assert_eq!(change("assignee_id")["new_value"], team.viewer.id.as_str());
    assert_eq!(change("tags")["old_value"], json!([]));
    assert_eq!(change("tags")["new_value"], json!(["a", "b"]));
    assert!(updates.iter().all(|e| e["field"] != "priority"));
    // Newest first: the creation is last, and ids descend.
    let ids: Vec<String> = items.iter().map(|e| str_of(e, "id")).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    app.stop().await;
}

#[tokio::test]
async fn every_member_reads_the_activity_and_nobody_else_does() {
    let app = spawn_app().await;
    let team = app.team().await;
    let activity = format!("/tasks/{}/activity", team.task_id);
    for user in [&team.owner, &team.member, &team.viewer] {
        let page = body(app.get(&activity, Some(&user.access)).await, 200).await;
        assert_eq!(entries(&page).len(), 1);
    }
    problem(app.get(&activity, Some(&team.outsider.access)).await, 404).await;
    problem(app.get(&activity, None).await, 401).await;
    // The project's audit log stays owner-only.
    let audit = format!("/projects/{}/audit", team.project_id);
    problem(app.get(&audit, Some(&team.member.access)).await, 403).await;
    // A removed member reads it no more.
    app.remove_member(&team.owner.access, &team.project_id, &team.member.id)
        .await;
    problem(app.get(&activity, Some(&team.member.access)).await, 404).await;
    // A deleted task has no activity to read.
    let deleted = app
        .delete(
            &format!("/tasks/{}", team.task_id),
            Some(&team.owner.access),
        )
        .await;
    assert_eq!(deleted.status(), 204);
    problem(app.get(&activity, Some(&team.owner.access)).await, 404).await;
    app.stop().await;
}

#[tokio::test]
async fn removing_an_assignee_records_the_unassignment_by_the_owner_and_pages_walk_every_entry() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    for title in ["a", "b", "c"] {
        let changed = app
            .patch(&path, Some(&team.owner.access), &json!({"title": title}))
            .await;
        assert_eq!(changed.status(), 200);
    }
    let assigned = app
        .patch(
            &path,
            Some(&team.owner.access),
            &json!({"assignee_id": team.member.id}),
        )
        .await;
    assert_eq!(assigned.status(), 200);
    app.remove_member(&team.owner.access, &team.project_id, &team.member.id)
        .await;
    // Page by page, one entry at a time.
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    for _ in 0..10 {
        let page = body(
            app.get(
                &format!("{path}/activity{query}"),
                Some(&team.viewer.access),
            )
            .await,
            200,
        )
        .await;
        let items = entries(&page);
        assert!(items.len() <= 1);
        seen.extend(items);
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    // created, 3 titles, assigned, unassigned.
    assert_eq!(seen.len(), 6, "{seen:?}");
    let newest = &seen[0];
    assert_eq!(newest["field"], "assignee_id");
    assert_eq!(newest["old_value"], team.member.id.as_str());
    assert_eq!(newest["new_value"], Value::Null);
    assert_eq!(newest["actor_id"], team.owner.id.as_str());
    let titles: Vec<&Value> = seen
        .iter()
        .filter(|e| e["field"] == "title")
        .map(|e| &e["new_value"])
        .collect();
    assert_eq!(titles, vec!["c", "b", "a"]);
    // A cursor of another task's activity is refused.
    let other = app
        .create_task(
            &team.owner.access,
            &team.project_id,
            json!({"title": "Other"}),
        )
        .await;
    let first = body(
        app.get(
            &format!("{path}/activity?limit=1"),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    let cursor = str_of(&first, "next_cursor");
    problem(
        app.get(
            &format!("/tasks/{}/activity?cursor={cursor}", str_of(&other, "id")),
            Some(&team.owner.access),
        )
        .await,
        400,
    )
    .await;
    app.stop().await;
}
