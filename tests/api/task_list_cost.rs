//! What one task-list request costs the database once the caller's session and role are cached:
//! one SQL statement a page, with every task's tags in it, on the first page and on the next.

use serde_json::{Value, json};

use crate::helpers::{TestApp, body, ids, spawn_app_with, statements_run, str_of};

/// Statements a list request runs once the session and the caller's project role come from the
/// cache: the page's SELECT, which reads each task's tags from the row's `tags` column (kept
/// from `task_tags` by triggers). (The pool's
/// check of an idle connection is a ping, not a statement, and is not counted.)
const STATEMENTS_PER_LIST: f64 = 1.0;

/// Runs `GET path` and returns its body and the statements the instance ran meanwhile.
async fn counted(app: &TestApp, path: &str, token: &str) -> (Value, f64) {
    // Background work reads the database too (the event feed after each write, webhook
    // delivery's dispatcher and its idle poll): the list is asked three times, and the fewest
    // statements one of them took is its own count (background work only ever adds).
    let state = &app.server.state;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let head = state
            .domain
            .read()
            .await
            .unwrap()
            .head_position()
            .await
            .unwrap();
        if state.feed.position() == head {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the feed catches up within 3 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut fewest = f64::MAX;
    let mut first = None;
    for _ in 0..3 {
        let before = statements_run(&app.metrics().await);
        let page = body(app.get(path, Some(token)).await, 200).await;
        let after = statements_run(&app.metrics().await);
        fewest = fewest.min(after - before);
        first.get_or_insert(page);
    }
    (first.unwrap(), fewest)
}

#[tokio::test]
async fn a_task_list_page_is_one_statement_with_the_tags_once_the_role_is_cached() {
    // A minute of in-process cache, so that a slow run cannot see the session or the role expire
    // between two requests (which would add their reads to the count).
    let app = spawn_app_with(&[
        ("TASKLIGHT_CACHE_L1_TTL_MS", "60000"),
        ("TASKLIGHT_EVENT_POLL_MS", "60000"),
    ])
    .await;
    let team = app.team().await;
    let token = team.viewer.access.as_str();
    for (title, tags) in [
        (
            "Several tags",
            json!(["zeta", "alpha", "mid", "m:1", "v1.2", "a_b-c"]),
        ),
        ("One tag", json!(["solo"])),
        ("No tags", json!([])),
    ] {
        let mut fields = json!({"title": title, "tags": tags});
        if title == "One tag" {
            fields["due_at"] = json!("2030-01-02T03:04:05Z");
        }
        app.create_task(&team.owner.access, &team.project_id, fields)
            .await;
    }
    // The first walk, before anything was read, decodes every row in full; the second finds each
    // version already rendered and decodes only the id, the version and the sort key.
    let cold = walk(&app, &team.project_id, token, "created_at", "asc").await;
    let warm = walk(&app, &team.project_id, token, "created_at", "asc").await;
    assert_eq!(cold.len(), 4);
    assert_eq!(cold, warm);
    let path = format!("/projects/{}/tasks?limit=20", team.project_id);
    // The first request loads the viewer's role into the cache.
    let first = body(app.get(&path, Some(token)).await, 200).await;

    let (page, statements) = counted(&app, &path, token).await;
    assert_eq!(
        statements, STATEMENTS_PER_LIST,
        "a cached-role list ran {statements} statements (a separate tags query would make 2)"
    );
    assert_eq!(page, first);
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 4);
    // Each task is listed exactly as it reads on its own (tags sorted by the database, as the
    // single read sorts them), and the tags are complete.
    for item in items {
        let one = format!("/tasks/{}", str_of(item, "id"));
        assert_eq!(item, &body(app.get(&one, Some(token)).await, 200).await);
    }
    // Every sort and direction, one task a page from rendered versions: the cursors carry the
    // right keys (due times absent sort last either way; ties go by id).
    for sort in ["created_at", "updated_at", "due_at", "priority"] {
        for order in ["asc", "desc"] {
            let walked: Vec<String> = walk(&app, &team.project_id, token, sort, order)
                .await
                .iter()
                .flat_map(ids)
                .collect();
            assert_eq!(walked, expected_order(items, sort, order), "{sort} {order}");
        }
    }
    let tags_of = |title: &str| -> Vec<String> {
        let item = items.iter().find(|i| i["title"] == title).expect(title);
        serde_json::from_value(item["tags"].clone()).expect("a list of strings")
    };
    let listed = tags_of("Several tags");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, ["a_b-c", "alpha", "m:1", "mid", "v1.2", "zeta"]);
    // Punctuation may sort differently under a PostgreSQL collation; letters may not.
    let letters: Vec<&String> = listed
        .iter()
        .filter(|t| t.chars().all(|c| c.is_ascii_lowercase()))
        .collect();
    assert_eq!(letters, ["alpha", "mid", "zeta"]);
    assert_eq!(tags_of("One tag"), ["solo"]);
    assert!(tags_of("No tags").is_empty());
    assert!(tags_of("First task").is_empty());

    // Filters, another sort and the cursor's next page cost one statement too.
    let (tagged, statements) = counted(&app, &format!("{path}&tag=solo"), token).await;
    assert_eq!(statements, STATEMENTS_PER_LIST);
    assert_eq!(tagged["items"].as_array().map(Vec::len), Some(1));
    let by_priority = format!(
        "/projects/{}/tasks?limit=2&sort=priority&order=desc&q=tag",
        team.project_id
    );
    let (page_one, statements) = counted(&app, &by_priority, token).await;
    assert_eq!(statements, STATEMENTS_PER_LIST);
    let cursor = str_of(&page_one, "next_cursor");
    let (page_two, statements) =
        counted(&app, &format!("{by_priority}&cursor={cursor}"), token).await;
    assert_eq!(statements, STATEMENTS_PER_LIST);
    assert_eq!(page_two["next_cursor"], Value::Null);
    let mut walked = [ids(&page_one), ids(&page_two)].concat();
    walked.sort();
    let mut matching: Vec<String> = items
        .iter()
        .filter(|i| i["title"].as_str().is_some_and(|t| t.contains("tag")))
        .map(|i| str_of(i, "id"))
        .collect();
    matching.sort();
    assert_eq!(walked, matching);
    // So does a ranked full-text search, first and next page.
    let ranked = format!(
        "/projects/{}/tasks?limit=2&sort=relevance&q=tags",
        team.project_id
    );
    let (page_one, statements) = counted(&app, &ranked, token).await;
    assert_eq!(statements, STATEMENTS_PER_LIST);
    let cursor = str_of(&page_one, "next_cursor");
    let (page_two, statements) = counted(&app, &format!("{ranked}&cursor={cursor}"), token).await;
    assert_eq!(statements, STATEMENTS_PER_LIST);
    let mut walked = [ids(&page_one), ids(&page_two)].concat();
    walked.sort();
    assert_eq!(walked, matching);

    // A change of tags reaches the list (a new version, the column rewritten by the trigger).
    let several = items.iter().find(|i| i["title"] == "Several tags").unwrap();
    let one = format!("/tasks/{}", str_of(several, "id"));
    let changed = body(
        app.patch(
            &one,
            Some(&team.owner.access),
            &json!({"tags": ["new", "b"]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["tags"], json!(["b", "new"]));
    let (page, statements) = counted(&app, &path, token).await;
    assert_eq!(statements, STATEMENTS_PER_LIST);
    let listed = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == several["id"])
        .unwrap();
    assert_eq!(listed, &changed);
    assert_eq!(listed, &body(app.get(&one, Some(token)).await, 200).await);
    app.stop().await;
}

/// The pages of a project's task list, one task a page, sorted by `sort` in `order`.
async fn walk(app: &TestApp, project: &str, token: &str, sort: &str, order: &str) -> Vec<Value> {
    let first = format!("/projects/{project}/tasks?limit=1&sort={sort}&order={order}");
    let mut pages = Vec::new();
    let mut path = first.clone();
    loop {
        let page = body(app.get(&path, Some(token)).await, 200).await;
        let next = page["next_cursor"].as_str().map(str::to_owned);
        pages.push(page);
        match next {
            Some(cursor) => path = format!("{first}&cursor={cursor}"),
            None => return pages,
        }
    }
}

/// The ids of `items` in the order the list promises for `sort` and `order`.
fn expected_order(items: &[Value], sort: &str, order: &str) -> Vec<String> {
    use chrono::{DateTime, Utc};
    let time = |v: &Value| {
        v.as_str()
            .map(|t| t.parse::<DateTime<Utc>>().expect("a time"))
    };
    let rank = |v: &Value| {
        ["low", "medium", "high", "urgent"]
            .iter()
            .position(|p| v == p)
    };
    let descending = order == "desc";
    let mut keyed: Vec<((i64, i64), String)> = items
        .iter()
        .map(|item| {
            let value = match sort {
                "priority" => (0, rank(&item["priority"]).expect("a priority") as i64),
                // A missing due time sorts last in either direction.
                "due_at" => match time(&item["due_at"]) {
                    Some(t) => (0, t.timestamp_micros()),
                    None => (if descending { -1 } else { 1 }, 0),
                },
                column => (0, time(&item[column]).expect("a time").timestamp_micros()),
            };
            (value, str_of(item, "id"))
        })
        .collect();
    keyed.sort();
    if descending {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, id)| id).collect()
}
