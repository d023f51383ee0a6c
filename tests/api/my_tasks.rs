//! "My tasks" (`GET /tasks`): tasks assigned to or created by the caller across every project
//! they are a member of now, with the filters, sorts and cursors of the project list.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, body, fields, problem, spawn_app, str_of};

/// The ids of a page's items, in order.
fn item_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| str_of(t, "id"))
        .collect()
}

async fn mine(app: &TestApp, token: &str, query: &str) -> Value {
    body(app.get(&format!("/tasks{query}"), Some(token)).await, 200).await
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn set_of(page: &Value) -> BTreeSet<String> {
    item_ids(page).into_iter().collect()
}

#[tokio::test]
async fn my_tasks_are_those_assigned_to_me_or_created_by_me_in_projects_i_belong_to() {
    let app = spawn_app().await;
    let (me, other) = futures::join!(app.user(), app.user());
    // My own project, with a task I created.
    let mine_p = str_of(&app.create_project(&me.access, "Mine").await, "id");
    let created = app
        .create_task(&me.access, &mine_p, json!({"title": "Created by me"}))
        .await;
    // Another's project where I am a member: one task assigned to me, one not.
    let theirs = str_of(&app.create_project(&other.access, "Theirs").await, "id");
    app.add_member(&other.access, &theirs, &me.id, "member")
        .await;
    let assigned = app
        .create_task(
            &other.access,
            &theirs,
            json!({"title": "Assigned to me", "assignee_id": me.id}),
        )
        .await;
    let not_mine = app
        .create_task(&other.access, &theirs, json!({"title": "Someone else's"}))
        .await;
    // A project I am not in at all.
    let elsewhere = str_of(&app.create_project(&other.access, "Elsewhere").await, "id");
    app.create_task(&other.access, &elsewhere, json!({"title": "Not visible"}))
        .await;

    let (created, assigned) = (str_of(&created, "id"), str_of(&assigned, "id"));
    let any = mine(&app, &me.access, "").await;
    assert_eq!(set_of(&any), set(&[&created, &assigned]));
    assert!(!set_of(&any).contains(&str_of(&not_mine, "id")));
    assert_eq!(any["next_cursor"], Value::Null);
    let by_relation = |relation: &'static str| mine(&app, &me.access, relation);
    assert_eq!(
        set_of(&by_relation("?relation=any").await),
        set(&[&created, &assigned])
    );
    assert_eq!(
        set_of(&by_relation("?relation=assigned").await),
        set(&[&assigned])
    );
    assert_eq!(
        set_of(&by_relation("?relation=created").await),
        set(&[&created])
    );
    // The other user's view: everything they created (including the task assigned to me).
    assert_eq!(set_of(&mine(&app, &other.access, "").await).len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn my_tasks_take_the_filters_sorts_and_cursors_of_the_project_list() {
    let app = spawn_app().await;
    let me = app.user().await;
    let (a, b) = futures::join!(
        app.create_project(&me.access, "A"),
        app.create_project(&me.access, "B")
    );
    let (a, b) = (str_of(&a, "id"), str_of(&b, "id"));
    let specs = [
        (&a, "one", "low", "todo"),
        (&b, "two", "urgent", "done"),
        (&a, "three", "high", "done"),
        (&b, "four", "medium", "todo"),
        (&a, "five", "urgent", "todo"),
    ];
    let mut made = Vec::new();
    for (project, title, priority, status) in specs {
        let task = app
            .create_task(
                &me.access,
                project,
                json!({"title": title, "priority": priority, "status": status, "tags": [title]}),
            )
            .await;
        made.push(task);
    }
    // Filters.
    let done = mine(&app, &me.access, "?status=done").await;
    assert_eq!(
        set_of(&done),
        set(&[&str_of(&made[1], "id"), &str_of(&made[2], "id")])
    );
    let tagged = mine(&app, &me.access, "?tag=four").await;
    assert_eq!(item_ids(&tagged), vec![str_of(&made[3], "id")]);
    let urgent = mine(&app, &me.access, "?priority=urgent&status=todo").await;
    assert_eq!(item_ids(&urgent), vec![str_of(&made[4], "id")]);
    let text = mine(&app, &me.access, "?q=three").await;
    assert_eq!(item_ids(&text), vec![str_of(&made[2], "id")]);

    // Sorted by priority, most urgent first, two at a time across both projects.
    let mut seen = Vec::new();
    let mut query = "?sort=priority&order=desc&limit=2".to_owned();
    for _ in 0..5 {
        let page = mine(&app, &me.access, &query).await;
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?sort=priority&order=desc&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let ranks: Vec<u8> = seen
        .iter()
        .map(|t| match t["priority"].as_str().unwrap() {
            "low" => 1,
            "medium" => 2,
            "high" => 3,
            _ => 4,
        })
        .collect();
    assert_eq!(seen.len(), 5, "every task once: {seen:?}");
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "{ranks:?}");
    let ids: BTreeSet<String> = seen.iter().map(|t| str_of(t, "id")).collect();
    assert_eq!(ids.len(), 5, "no task twice");

    // A project list's cursor is not a "my tasks" cursor.
    let project_page = body(
        app.get(&format!("/projects/{a}/tasks?limit=1"), Some(&me.access))
            .await,
        200,
    )
    .await;
    let cursor = str_of(&project_page, "next_cursor");
    let refused = problem(
        app.get(&format!("/tasks?limit=1&cursor={cursor}"), Some(&me.access))
            .await,
        400,
    )
    .await;
    assert_eq!(fields(&refused), vec!["cursor"]);
    // Bad parameters name themselves.
    let bad = problem(app.get("/tasks?relation=all", Some(&me.access)).await, 400).await;
    assert!(bad.to_string().contains("relation"), "{bad}");
    app.stop().await;
}

#[tokio::test]
async fn a_removed_member_no_longer_sees_the_projects_tasks_they_created_and_viewers_see_theirs() {
    let app = spawn_app().await;
    let team = app.team().await;
    let by_member = app
        .create_task(
            &team.member.access,
            &team.project_id,
            json!({"title": "Made by the member"}),
        )
        .await;
    let for_viewer = app
        .create_task(
            &team.owner.access,
            &team.project_id,
            json!({"title": "For the viewer", "assignee_id": team.viewer.id}),
        )
        .await;
    assert_eq!(
        item_ids(&mine(&app, &team.member.access, "").await),
        vec![str_of(&by_member, "id")]
    );
    assert_eq!(
        item_ids(&mine(&app, &team.viewer.access, "").await),
        vec![str_of(&for_viewer, "id")]
    );
    assert!(item_ids(&mine(&app, &team.outsider.access, "").await).is_empty());
    // Removed, the member created the task but may no longer see it.
    app.remove_member(&team.owner.access, &team.project_id, &team.member.id)
        .await;
    assert!(item_ids(&mine(&app, &team.member.access, "").await).is_empty());
    // Anonymous callers get 401.
    problem(app.get("/tasks", None).await, 401).await;
    app.stop().await;
}
