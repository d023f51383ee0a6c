//! Full-text search on the task list (`q`): titles, descriptions and comments, stemmed, ranked
//! with `sort=relevance`, paginated through a ranked list, and safe for any input. The same
//! tests run on SQLite (FTS5) and PostgreSQL (tsvector).

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{TestApp, body, ids, invalid, spawn_app, str_of};

/// The ids of the project's tasks matching `query` (URL-encoded by the caller as needed).
async fn search(app: &TestApp, token: &str, project_id: &str, query: &str) -> Vec<String> {
    let path = format!("/projects/{project_id}/tasks?limit=100&{query}");
    ids(&body(app.get(&path, Some(token)).await, 200).await)
}

fn q(text: &str) -> String {
    format!("q={}", urlencoding(text))
}

/// Percent-encodes every byte but unreserved ASCII.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn task(app: &TestApp, token: &str, project_id: &str, fields: Value) -> String {
    str_of(&app.create_task(token, project_id, fields).await, "id")
}

async fn comment(app: &TestApp, token: &str, task_id: &str, text: &str) -> String {
    let path = format!("/tasks/{task_id}/comments");
    str_of(
        &body(
            app.post(&path, Some(token), &json!({ "body": text })).await,
            201,
        )
        .await,
        "id",
    )
}

#[tokio::test]
async fn q_finds_words_in_titles_descriptions_and_comments_whatever_their_endings() {
    let app = spawn_app().await;
    let team = app.team().await;
    let (token, project) = (&team.member.access, &team.project_id);
    let titled = task(&app, token, project, json!({"title": "Launch the rocket"})).await;
    let described = task(
        &app,
        token,
        project,
        json!({"title": "Fuel", "description": "Before launching, check the valves."}),
    )
    .await;
    let commented = task(&app, token, project, json!({"title": "Paint"})).await;
    comment(&app, token, &commented, "Needed for the launches next week").await;
    let unrelated = task(&app, token, project, json!({"title": "Lunch order"})).await;
    let all = [&titled, &described, &commented].map(String::clone);
    for text in ["launch", "LAUNCHING", "launches", "Launched"] {
        let mut found = search(&app, token, project, &q(text)).await;
        found.sort();
        let mut expected = all.to_vec();
        expected.sort();
        assert_eq!(found, expected, "q={text}");
    }
    // Every word must appear: a task with only one of them is not found.
    assert_eq!(
        search(&app, token, project, &q("launch valves")).await,
        vec![described.clone()]
    );
    assert_eq!(
        search(&app, token, project, &q("paint launch")).await,
        vec![commented.clone()]
    );
    assert_eq!(search(&app, token, project, &q("lunch")).await, [unrelated]);
    assert!(
        search(&app, token, project, &q("launch zeppelin"))
            .await
            .is_empty()
    );
    // Filters combine with the search; another project's tasks never appear.
    body(
        app.patch(
            &format!("/tasks/{titled}"),
            Some(token),
            &json!({"status": "done"}),
        )
        .await,
        200,
    )
    .await;
    let done = format!("status=done&{}", q("launch"));
    assert_eq!(
        search(&app, token, project, &done).await,
        vec![titled.clone()]
    );
    let elsewhere = str_of(&app.create_project(token, "Elsewhere").await, "id");
    task(
        &app,
        token,
        &elsewhere,
        json!({"title": "Launch elsewhere"}),
    )
    .await;
    assert_eq!(
        search(&app, token, project, &q("elsewhere")).await,
        Vec::<String>::new()
    );
    app.stop().await;
}

#[tokio::test]
async fn the_index_follows_task_and_comment_changes() {
    let app = spawn_app().await;
    let team = app.team().await;
    let (token, project) = (&team.member.access, &team.project_id);
    let id = task(&app, token, project, json!({"title": "Zebra crossing"})).await;
    let path = format!("/tasks/{id}");
    assert_eq!(
        search(&app, token, project, &q("zebra")).await,
        vec![id.clone()]
    );
    // A change of title and description moves the task between searches.
    body(
        app.patch(
            &path,
            Some(token),
            &json!({"title": "Giraffe", "description": "tall"}),
        )
        .await,
        200,
    )
    .await;
    assert!(search(&app, token, project, &q("zebra")).await.is_empty());
    assert_eq!(
        search(&app, token, project, &q("giraffe tall")).await,
        vec![id.clone()]
    );
    // A change of anything else keeps it where it was.
    body(
        app.patch(
            &path,
            Some(token),
            &json!({"priority": "urgent", "tags": ["x"]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        search(&app, token, project, &q("giraffe")).await,
        vec![id.clone()]
    );
    // Comments: written, edited, deleted.
    let c = comment(&app, token, &id, "a note about penguins").await;
    assert_eq!(
        search(&app, token, project, &q("penguin")).await,
        vec![id.clone()]
    );
    let one = format!("/comments/{c}");
    body(
        app.patch(&one, Some(token), &json!({"body": "about seals"}))
            .await,
        200,
    )
    .await;
    assert!(
        search(&app, token, project, &q("penguins"))
            .await
            .is_empty()
    );
    assert_eq!(
        search(&app, token, project, &q("seal")).await,
        vec![id.clone()]
    );
    assert_eq!(app.delete(&one, Some(token)).await.status(), 204);
    assert!(search(&app, token, project, &q("seal")).await.is_empty());
    // A deleted task is found no more.
    comment(&app, token, &id, "otters").await;
    assert_eq!(app.delete(&path, Some(token)).await.status(), 204);
    assert!(search(&app, token, project, &q("otters")).await.is_empty());
    assert!(search(&app, token, project, &q("giraffe")).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn relevance_puts_title_matches_before_description_matches_before_comment_matches() {
    let app = spawn_app().await;
    let team = app.team().await;
    let (token, project) = (&team.member.access, &team.project_id);
    // Created in the opposite order, so creation order cannot pass the test.
    let in_comment = task(&app, token, project, json!({"title": "Alpha"})).await;
    comment(&app, token, &in_comment, "the telescope is ready").await;
    let in_description = task(
        &app,
        token,
        project,
        json!({"title": "Beta", "description": "calibrate the telescope"}),
    )
    .await;
    let in_title = task(&app, token, project, json!({"title": "Telescope"})).await;
    let expected = [in_title, in_description, in_comment];
    let ranked = format!("sort=relevance&{}", q("telescope"));
    assert_eq!(search(&app, token, project, &ranked).await, expected);
    let reversed = format!("sort=relevance&order=desc&{}", q("telescope"));
    let mut worst_first = expected.to_vec();
    worst_first.reverse();
    assert_eq!(search(&app, token, project, &reversed).await, worst_first);
    // Without q there is nothing to rank by.
    let path = format!("/projects/{project}/tasks?sort=relevance");
    invalid(app.get(&path, Some(token)).await, "sort").await;
    app.stop().await;
}

#[tokio::test]
async fn a_ranked_list_pages_without_duplicates_or_gaps() {
    let app = spawn_app().await;
    let team = app.team().await;
    let (token, project) = (&team.member.access, &team.project_id);
    // Several scores, and ties (equal documents) that the id must order.
    let mut created = HashSet::new();
    for fields in [
        json!({"title": "Harbour"}),
        json!({"title": "Harbour"}),
        json!({"title": "Harbour map", "description": "harbour harbour"}),
        json!({"title": "Boats", "description": "in the harbour"}),
        json!({"title": "Boats", "description": "in the harbour"}),
        json!({"title": "Sails", "description": "far from any harbour, a long way off"}),
        json!({"title": "Harbour lights", "description": "harbour"}),
    ] {
        created.insert(task(&app, token, project, fields).await);
    }
    task(&app, token, project, json!({"title": "Unrelated"})).await;
    let query = format!("sort=relevance&{}", q("harbour"));
    // The first walk reads every row cold (its cursors come from decoded rows), the later ones
    // from documents already rendered (their cursors from the sort key alone).
    let mut walks = Vec::new();
    for limit in [2, 1, 3] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/projects/{project}/tasks?limit={limit}&{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = body(app.get(&path, Some(token)).await, 200).await;
            seen.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            assert!(seen.len() <= created.len(), "pages repeat rows");
        }
        walks.push((limit, seen));
    }
    let whole = search(&app, token, project, &query).await;
    assert_eq!(whole.iter().cloned().collect::<HashSet<_>>(), created);
    for (limit, seen) in walks {
        assert_eq!(seen, whole, "pages of {limit}");
    }
    // A cursor of a ranked list is refused for another search.
    let first = body(
        app.get(
            &format!("/projects/{project}/tasks?limit=2&{query}"),
            Some(token),
        )
        .await,
        200,
    )
    .await;
    let other = format!(
        "/projects/{project}/tasks?sort=relevance&q=boats&cursor={}",
        str_of(&first, "next_cursor")
    );
    invalid(app.get(&other, Some(token)).await, "cursor").await;
    app.stop().await;
}

#[tokio::test]
async fn no_input_makes_search_fail_operators_are_plain_words() {
    let app = spawn_app().await;
    let team = app.team().await;
    let (token, project) = (&team.member.access, &team.project_id);
    let plan = task(
        &app,
        token,
        project,
        json!({"title": "Launch plan", "description": "Café crème für 東京"}),
    )
    .await;
    let launcher = task(&app, token, project, json!({"title": "Launcher repair"})).await;
    let cases: &[(&str, Vec<&String>)] = &[
        ("\"launch plan\"", vec![&plan]),
        ("\"launch", vec![&plan]),
        ("launch*", vec![&plan]),
        ("launch AND plan", vec![&plan]),
        ("launch OR repair", vec![]),
        ("NOT plan", vec![&plan]),
        ("NEAR(launch plan)", vec![]),
        ("plan -launch", vec![&plan]),
        ("title:launch", vec![]),
        ("launch: plan!", vec![&plan]),
        ("(launch) [plan] {x}", vec![]),
        ("'; DROP TABLE tasks; --", vec![]),
        ("^launch", vec![&plan]),
        ("a\\b %_ *", vec![]),
        ("café", vec![&plan]),
        ("für 東京", vec![&plan]),
        ("launcher", vec![&launcher]),
        ("the of and", vec![]),
        ("THE", vec![]),
        ("...", vec![]),
        ("   ", vec![]),
        ("🚀", vec![]),
    ];
    for (text, expected) in cases {
        let mut found = search(&app, token, project, &q(text)).await;
        found.sort();
        let mut expected: Vec<String> = expected.iter().map(|s| (*s).clone()).collect();
        expected.sort();
        assert_eq!(found, expected, "q={text:?}");
        let ranked = format!("sort=relevance&{}", q(text));
        assert_eq!(
            search(&app, token, project, &ranked).await.len(),
            expected.len()
        );
    }
    // The tasks are all still there.
    assert_eq!(search(&app, token, project, "").await.len(), 3);
    // Control characters and over-long texts are refused, naming q.
    for bad in ["launch\u{0}", "a\u{1b}[31m", &"x".repeat(201)] {
        let path = format!("/projects/{project}/tasks?{}", q(bad));
        invalid(app.get(&path, Some(token)).await, "q").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn my_tasks_search_and_rank_across_my_projects_only() {
    let app = spawn_app().await;
    let team = app.team().await;
    let token = &team.member.access;
    let other = str_of(&app.create_project(token, "Second").await, "id");
    let in_title = task(&app, token, &other, json!({"title": "Quasar survey"})).await;
    let in_description = task(
        &app,
        token,
        &team.project_id,
        json!({"title": "Notes", "description": "a quasar, maybe"}),
    )
    .await;
    // The owner's task in the shared project is neither assigned to nor created by the member.
    task(
        &app,
        &team.owner.access,
        &team.project_id,
        json!({"title": "Quasar"}),
    )
    .await;
    // Another user's project is never searched.
    let stranger = str_of(&app.create_project(&team.outsider.access, "X").await, "id");
    task(
        &app,
        &team.outsider.access,
        &stranger,
        json!({"title": "Quasar"}),
    )
    .await;
    let path = format!("/tasks?sort=relevance&{}", q("quasars"));
    let found = ids(&body(app.get(&path, Some(token)).await, 200).await);
    assert_eq!(found, [in_title, in_description]);
    invalid(app.get("/tasks?sort=relevance", Some(token)).await, "sort").await;
    invalid(
        app.get(&format!("/tasks?{}", q("x\u{0}")), Some(token))
            .await,
        "q",
    )
    .await;
    app.stop().await;
}
