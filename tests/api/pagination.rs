//! Keyset pagination of tasks: stable while rows are inserted between pages, for every sort.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, body, ids, invalid, spawn_app, str_of};

const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

/// The sort key of a task: a timestamp in microseconds or a priority rank; `None` for no due date.
fn key(task: &Value, sort: &str) -> Option<i64> {
    match sort {
        "priority" => Some(
            PRIORITIES
                .iter()
                .position(|p| task["priority"] == *p)
                .unwrap() as i64,
        ),
        field => task[field].as_str().map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap_or_else(|e| panic!("{field} `{t}`: {e}"))
                .timestamp_micros()
        }),
    }
}

/// Keys in order (non-decreasing, or non-increasing for `desc`), nulls together at one end.
fn assert_ordered(tasks: &[Value], sort: &str, desc: bool, context: &str) {
    let keys: Vec<Option<i64>> = tasks.iter().map(|t| key(t, sort)).collect();
    let present: Vec<i64> = keys.iter().flatten().copied().collect();
    let ordered = present
        .windows(2)
        .all(|w| if desc { w[0] >= w[1] } else { w[0] <= w[1] });
    assert!(ordered, "{context}: keys out of order: {keys:?}");
    let nulls: Vec<usize> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.is_none())
        .map(|(i, _)| i)
        .collect();
    if let (Some(first), Some(last)) = (nulls.first(), nulls.last()) {
        let contiguous = last - first + 1 == nulls.len();
        let at_an_end = *first == 0 || *last == keys.len() - 1;
        assert!(
            contiguous && at_an_end,
            "{context}: nulls not together at one end: {keys:?}"
        );
    }
}

fn task_fields(i: usize) -> Value {
    let due = match i % 3 {
        0 => Value::Null,
        1 => json!("2030-06-01T12:00:00Z"),
        _ => json!(format!("2030-0{}-15T08:30:00Z", 1 + i % 9)),
    };
    let status = if i % 4 == 3 { "done" } else { "todo" };
    json!({"title": format!("task {i}"), "priority": PRIORITIES[(i * 7) % 4], "due_at": due, "status": status})
}

/// Walks every page (`limit` 4), inserting a task between the first pages; returns the items seen.
async fn walk(
    app: &TestApp,
    token: &str,
    project: &str,
    query: &str,
    next_insert: &mut usize,
) -> Vec<Value> {
    let base = format!("/projects/{project}/tasks?limit=4&{query}");
    let mut seen = Vec::new();
    let mut page = body(app.get(&base, Some(token)).await, 200).await;
    for page_number in 0..50 {
        assert!(page["items"].as_array().unwrap().len() <= 4, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_owned) else {
            return seen;
        };
        if page_number < 3 {
            app.create_task(token, project, task_fields(*next_insert))
                .await;
            *next_insert += 1;
        }
        page = body(
            app.get(&format!("{base}&cursor={cursor}"), Some(token))
                .await,
            200,
        )
        .await;
    }
    panic!("{query}: more than 50 pages");
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_while_rows_are_inserted_for_every_sort() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project = str_of(&app.create_project(&user.access, "Paging").await, "id");
    for i in 0..14 {
        app.create_task(&user.access, &project, task_fields(i))
            .await;
    }
    let mut next_insert = 100;
    for query in [
        "sort=created_at&order=asc",
        "sort=created_at&order=desc",
        "sort=updated_at&order=asc",
        "sort=updated_at&order=desc",
        "sort=due_at&order=asc",
        "sort=due_at&order=desc",
        "sort=priority&order=asc",
        "sort=priority&order=desc",
        "sort=priority&order=desc&status=todo",
        "sort=due_at&order=asc&status=todo",
    ] {
        let sort = query.split('&').next().unwrap().trim_start_matches("sort=");
        let desc = query.contains("order=desc");
        let baseline = body(
            app.get(
                &format!("/projects/{project}/tasks?limit=100&{query}"),
                Some(&user.access),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(
            baseline["next_cursor"],
            Value::Null,
            "{query}: the baseline must fit one page"
        );
        let before = ids(&baseline);
        assert_ordered(baseline["items"].as_array().unwrap(), sort, desc, query);
        let walked = walk(&app, &user.access, &project, query, &mut next_insert).await;
        let walked_ids: Vec<String> = walked.iter().map(|t| str_of(t, "id")).collect();
        let unique: HashSet<&String> = walked_ids.iter().collect();
        assert_eq!(
            unique.len(),
            walked_ids.len(),
            "{query}: duplicates in {walked_ids:?}"
        );
        let old: HashSet<&String> = before.iter().collect();
        let old_in_walk: Vec<String> = walked_ids
            .iter()
            .filter(|id| old.contains(id))
            .cloned()
            .collect();
        assert_eq!(
            old_in_walk, before,
            "{query}: rows that existed before were skipped or reordered"
        );
        assert_ordered(&walked, sort, desc, query);
        if query.contains("status=todo") {
            assert!(
                walked.iter().all(|t| t["status"] == "todo"),
                "{query}: the filter leaked"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_default_page_has_20_tasks_and_the_last_page_no_cursor() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project = str_of(
        &app.create_project(&user.access, "Default page").await,
        "id",
    );
    for i in 0..21 {
        app.create_task(&user.access, &project, json!({"title": format!("t{i}")}))
            .await;
    }
    let path = format!("/projects/{project}/tasks");
    let first = body(app.get(&path, Some(&user.access)).await, 200).await;
    assert_eq!(ids(&first).len(), 20);
    let cursor = str_of(&first, "next_cursor");
    let last = body(
        app.get(&format!("{path}?cursor={cursor}"), Some(&user.access))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&last).len(), 1);
    assert_eq!(last["next_cursor"], Value::Null);
    let all = body(
        app.get(&format!("{path}?limit=100"), Some(&user.access))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&all), [ids(&first), ids(&last)].concat());
    assert_eq!(all["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_used_with_another_sort_or_filter_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project = str_of(&app.create_project(&user.access, "Cursors").await, "id");
    for i in 0..3 {
        app.create_task(&user.access, &project, task_fields(i))
            .await;
    }
    let path = format!("/projects/{project}/tasks");
    let page = body(
        app.get(&format!("{path}?limit=1&sort=priority"), Some(&user.access))
            .await,
        200,
    )
    .await;
    let cursor = str_of(&page, "next_cursor");
    for other in [
        "sort=created_at",
        "sort=priority&order=desc",
        "sort=priority&status=todo",
        "sort=due_at",
    ] {
        let resp = app
            .get(
                &format!("{path}?limit=1&{other}&cursor={cursor}"),
                Some(&user.access),
            )
            .await;
        invalid(resp, "cursor").await;
    }
    let same = app
        .get(
            &format!("{path}?limit=1&sort=priority&cursor={cursor}"),
            Some(&user.access),
        )
        .await;
    assert_eq!(ids(&body(same, 200).await).len(), 1);
    app.stop().await;
}
