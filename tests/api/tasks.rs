//! Tasks: create with defaults, read, update, clear, delete, and list filters.

use serde_json::{Value, json};

use crate::helpers::{body, header, ids, invalid, problem, spawn_app, str_of};

#[tokio::test]
async fn creating_a_task_returns_201_with_defaults_etag_and_location() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/projects/{}/tasks", team.project_id);
    let resp = app
        .post(
            &path,
            Some(&team.member.access),
            &json!({"title": "Write tests"}),
        )
        .await;
    let (etag, location) = (header(&resp, "etag"), header(&resp, "location"));
    let task = body(resp, 201).await;
    let id = str_of(&task, "id");
    assert_eq!(etag, "\"v1\"");
    assert_eq!(location, format!("/api/v1/tasks/{id}"));
    assert_eq!(task["project_id"], team.project_id.as_str());
    assert_eq!(task["title"], "Write tests");
    assert_eq!(task["description"], "");
    assert_eq!(task["status"], "todo");
    assert_eq!(task["priority"], "medium");
    assert_eq!(task["assignee_id"], Value::Null);
    assert_eq!(task["due_at"], Value::Null);
    assert_eq!(task["tags"], json!([]));
    assert_eq!(task["created_by"], team.member.id.as_str());
    assert_eq!(task["version"], 1);
    let fetched = body(
        app.get(&format!("/tasks/{id}"), Some(&team.viewer.access))
            .await,
        200,
    )
    .await;
    assert_eq!(fetched, task);
    app.stop().await;
}

#[tokio::test]
async fn a_task_with_every_field_set_reads_back_the_same() {
    let app = spawn_app().await;
    let team = app.team().await;
    let fields = json!({
        "title": "Ship it", "description": "Line one\nLine two", "status": "in_progress",
        "priority": "urgent", "assignee_id": team.member.id, "due_at": "2031-05-06T07:08:09Z",
        "tags": ["release", "v1.2", "team:core", "a_b-c"],
    });
    let task = app
        .create_task(&team.owner.access, &team.project_id, fields.clone())
        .await;
    for key in ["title", "description", "status", "priority", "assignee_id"] {
        assert_eq!(task[key], fields[key], "{key}");
    }
    // Tags are a set: any order will do, but all of them and nothing else.
    let mut tags: Vec<String> = serde_json::from_value(task["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["a_b-c", "release", "team:core", "v1.2"]);
    let due = chrono::DateTime::parse_from_rfc3339(&str_of(&task, "due_at")).unwrap();
    assert_eq!(
        due,
        chrono::DateTime::parse_from_rfc3339("2031-05-06T07:08:09Z").unwrap()
    );
    let fetched = body(
        app.get(
            &format!("/tasks/{}", str_of(&task, "id")),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(fetched, task);
    app.stop().await;
}

#[tokio::test]
async fn patching_a_task_changes_only_the_given_fields_and_bumps_the_version() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let before = body(app.get(&path, Some(&team.owner.access)).await, 200).await;
    let change = json!({"status": "done", "priority": "low", "tags": ["x"]});
    let resp = app.patch(&path, Some(&team.member.access), &change).await;
    assert_eq!(header(&resp, "etag"), "\"v2\"");
    let after = body(resp, 200).await;
    assert_eq!(
        (after["status"].clone(), after["priority"].clone()),
        (json!("done"), json!("low"))
    );
    assert_eq!(after["tags"], json!(["x"]));
    assert_eq!(after["title"], before["title"]);
    assert_eq!(after["version"], 2);
    assert_eq!(after["created_at"], before["created_at"]);
    assert_ne!(after["updated_at"], before["updated_at"]);
    app.stop().await;
}

#[tokio::test]
async fn patching_assignee_and_due_date_with_null_clears_them() {
    let app = spawn_app().await;
    let team = app.team().await;
    let fields =
        json!({"title": "Dated", "assignee_id": team.member.id, "due_at": "2030-01-01T00:00:00Z"});
    let task = app
        .create_task(&team.owner.access, &team.project_id, fields)
        .await;
    let path = format!("/tasks/{}", str_of(&task, "id"));
    let untouched = body(
        app.patch(
            &path,
            Some(&team.owner.access),
            &json!({"title": "Renamed"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(untouched["assignee_id"], team.member.id.as_str());
    assert!(untouched["due_at"].is_string());
    let cleared = json!({"assignee_id": null, "due_at": null});
    let after = body(
        app.patch(&path, Some(&team.owner.access), &cleared).await,
        200,
    )
    .await;
    assert_eq!(
        (after["assignee_id"].clone(), after["due_at"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(after["title"], "Renamed");
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_task_returns_204_and_then_404() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    body(app.delete(&path, Some(&team.member.access)).await, 204).await;
    problem(app.get(&path, Some(&team.owner.access)).await, 404).await;
    problem(
        app.patch(&path, Some(&team.owner.access), &json!({"title": "x"}))
            .await,
        404,
    )
    .await;
    problem(app.delete(&path, Some(&team.owner.access)).await, 404).await;
    let list = body(
        app.get(
            &format!("/projects/{}/tasks", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    assert!(ids(&list).is_empty(), "{list}");
    app.stop().await;
}

#[tokio::test]
async fn an_assignee_who_is_not_a_member_is_refused_on_create_and_update() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/projects/{}/tasks", team.project_id);
    let fields = json!({"title": "x", "assignee_id": team.outsider.id});
    invalid(
        app.post(&path, Some(&team.owner.access), &fields).await,
        "assignee_id",
    )
    .await;
    let task = format!("/tasks/{}", team.task_id);
    let change = json!({"assignee_id": team.outsider.id});
    invalid(
        app.patch(&task, Some(&team.owner.access), &change).await,
        "assignee_id",
    )
    .await;
    let unknown = json!({"assignee_id": uuid::Uuid::new_v4()});
    invalid(
        app.patch(&task, Some(&team.owner.access), &unknown).await,
        "assignee_id",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn task_list_filters_select_exactly_the_matching_tasks() {
    let app = spawn_app().await;
    let team = app.team().await;
    let (owner, p) = (&team.owner.access, &team.project_id);
    let mk = |fields: Value| app.create_task(owner, p, fields);
    let a = str_of(
        &mk(
            json!({"title": "Alpha bug", "status": "done", "priority": "high", "tags": ["bug"],
        "due_at": "2030-01-10T00:00:00Z"}),
        )
        .await,
        "id",
    );
    let b = str_of(
        &mk(
            json!({"title": "Beta feature", "priority": "low", "assignee_id": team.member.id,
        "tags": ["feature", "ui"], "due_at": "2030-03-10T00:00:00Z"}),
        )
        .await,
        "id",
    );
    let c = str_of(
        &mk(
            json!({"title": "Gamma BUG hunt", "status": "in_progress", "tags": ["bug", "ui"],
        "assignee_id": team.member.id}),
        )
        .await,
        "id",
    );
    let first = team.task_id.clone();
    let cases: Vec<(String, Vec<&String>)> = vec![
        ("status=done".into(), vec![&a]),
        ("status=todo".into(), vec![&first, &b]),
        ("priority=low".into(), vec![&b]),
        ("priority=medium".into(), vec![&first, &c]),
        (format!("assignee_id={}", team.member.id), vec![&b, &c]),
        ("tag=bug".into(), vec![&a, &c]),
        ("tag=ui&status=in_progress".into(), vec![&c]),
        ("due_before=2030-02-01T00:00:00Z".into(), vec![&a]),
        ("due_after=2030-02-01T00:00:00Z".into(), vec![&b]),
        ("q=bug".into(), vec![&a, &c]),
        ("q=FEATURE".into(), vec![&b]),
        ("tag=nothing-has-this".into(), vec![]),
    ];
    for (query, expected) in cases {
        let page = body(
            app.get(&format!("/projects/{p}/tasks?{query}"), Some(owner))
                .await,
            200,
        )
        .await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids(&page), expected, "?{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn tasks_are_listed_in_creation_order_by_default_and_by_priority_on_request() {
    let app = spawn_app().await;
    let user = app.user().await;
    let p = str_of(&app.create_project(&user.access, "Sorting").await, "id");
    let mut created = Vec::new();
    for priority in ["high", "low", "urgent", "medium"] {
        let task = app
            .create_task(
                &user.access,
                &p,
                json!({"title": priority, "priority": priority}),
            )
            .await;
        created.push(str_of(&task, "id"));
    }
    let default = body(
        app.get(&format!("/projects/{p}/tasks"), Some(&user.access))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&default), created);
    let desc = body(
        app.get(
            &format!("/projects/{p}/tasks?sort=priority&order=desc"),
            Some(&user.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        ids(&desc),
        vec![
            created[2].clone(),
            created[0].clone(),
            created[3].clone(),
            created[1].clone()
        ]
    );
    let newest = body(
        app.get(
            &format!("/projects/{p}/tasks?order=desc"),
            Some(&user.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        ids(&newest),
        created.iter().rev().cloned().collect::<Vec<_>>()
    );
    app.stop().await;
}
