//! Comments on tasks: writing, listing oldest first, editing and deleting, the authorization
//! matrix, the task's `comment_count` and version, ETags, limits, audit, and what a task's
//! deletion takes with it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, body, header, ids, invalid, problem, spawn_app, str_of};

fn comments_of(task_id: &str) -> String {
    format!("/tasks/{task_id}/comments")
}

/// Writes a comment as `token`; returns its body.
async fn comment(app: &TestApp, token: &str, task_id: &str, text: &str) -> Value {
    body(
        app.post(&comments_of(task_id), Some(token), &json!({ "body": text }))
            .await,
        201,
    )
    .await
}

#[tokio::test]
async fn a_member_comments_and_every_member_reads_the_comments_oldest_first() {
    let app = spawn_app().await;
    let team = app.team().await;
    let text = "  indented code\n\n**bold** <script>alert(1)</script>\n";
    let resp = app
        .post(
            &comments_of(&team.task_id),
            Some(&team.member.access),
            &json!({ "body": text }),
        )
        .await;
    let (etag, location) = (header(&resp, "etag"), header(&resp, "location"));
    let first = body(resp, 201).await;
    let id = str_of(&first, "id");
    assert_eq!(etag, "\"v1\"");
    assert_eq!(location, format!("/api/v1/comments/{id}"));
    // Markdown is stored exactly as sent: not trimmed, not rendered, not escaped.
    assert_eq!(first["body"], text);
    assert_eq!(first["task_id"], team.task_id.as_str());
    assert_eq!(first["author_id"], team.member.id.as_str());
    assert_eq!(first["version"], 1);
    assert_eq!(first["created_at"], first["updated_at"]);
    let second = comment(&app, &team.owner.access, &team.task_id, "second").await;
    let third = comment(&app, &team.member.access, &team.task_id, "third").await;
    for reader in [&team.owner, &team.member, &team.viewer] {
        let page = body(
            app.get(&comments_of(&team.task_id), Some(&reader.access))
                .await,
            200,
        )
        .await;
        assert_eq!(
            ids(&page),
            [&first, &second, &third].map(|c| str_of(c, "id"))
        );
        assert_eq!(page["items"][0], first);
        assert_eq!(page["next_cursor"], Value::Null);
    }
    let fetched = app
        .get(&format!("/comments/{id}"), Some(&team.viewer.access))
        .await;
    assert_eq!(header(&fetched, "etag"), "\"v1\"");
    assert_eq!(body(fetched, 200).await, first);
    app.stop().await;
}

#[tokio::test]
async fn the_comment_list_is_paginated_without_duplicates_or_gaps() {
    let app = spawn_app().await;
    let team = app.team().await;
    let mut written = Vec::new();
    for i in 0..5 {
        let c = comment(&app, &team.member.access, &team.task_id, &format!("c{i}")).await;
        written.push(str_of(&c, "id"));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{}?limit=2", comments_of(&team.task_id));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = body(app.get(&path, Some(&team.viewer.access)).await, 200).await;
        pages += 1;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the list does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, written);
    // A cursor of one task's comments is refused on another's.
    let other = app
        .create_task(
            &team.owner.access,
            &team.project_id,
            json!({"title": "Other"}),
        )
        .await;
    let first = body(
        app.get(
            &format!("{}?limit=2", comments_of(&team.task_id)),
            Some(&team.viewer.access),
        )
        .await,
        200,
    )
    .await;
    let path = format!(
        "{}?cursor={}",
        comments_of(&str_of(&other, "id")),
        str_of(&first, "next_cursor")
    );
    invalid(app.get(&path, Some(&team.viewer.access)).await, "cursor").await;
    invalid(
        app.get(
            &format!("{}?limit=0", comments_of(&team.task_id)),
            Some(&team.viewer.access),
        )
        .await,
        "limit",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn who_may_write_read_edit_and_delete_comments() {
    let app = spawn_app().await;
    let team = app.team().await;
    // A member who wrote a comment and was then removed from the project.
    let removed = app.user().await;
    app.add_member(&team.owner.access, &team.project_id, &removed.id, "member")
        .await;
    let removed_comment = comment(&app, &removed.access, &team.task_id, "before leaving").await;
    let path = format!("/projects/{}/members/{}", team.project_id, removed.id);
    assert_eq!(
        app.delete(&path, Some(&team.owner.access)).await.status(),
        204
    );

    let list = comments_of(&team.task_id);
    let new = json!({ "body": "hello" });
    // Writing: owners and members; viewers 403; outsiders and removed members 404; anonymous 401.
    for (who, token, status) in [
        ("owner", Some(&team.owner.access), 201),
        ("member", Some(&team.member.access), 201),
        ("viewer", Some(&team.viewer.access), 403),
        ("outsider", Some(&team.outsider.access), 404),
        ("removed member", Some(&removed.access), 404),
        ("anonymous", None, 401),
    ] {
        let resp = app.post(&list, token.map(String::as_str), &new).await;
        assert_eq!(resp.status(), status, "{who} writing");
        if status != 201 {
            problem(resp, status).await;
        }
    }
    let member_comment = comment(&app, &team.member.access, &team.task_id, "mine").await;
    let one = format!("/comments/{}", str_of(&member_comment, "id"));
    // Reading the list and one comment: every role; not outsiders, removed members, anonymous.
    for (who, token, status) in [
        ("owner", Some(&team.owner.access), 200),
        ("member", Some(&team.member.access), 200),
        ("viewer", Some(&team.viewer.access), 200),
        ("outsider", Some(&team.outsider.access), 404),
        ("removed member", Some(&removed.access), 404),
        ("anonymous", None, 401),
    ] {
        for path in [&list, &one] {
            let resp = app.get(path, token.map(String::as_str)).await;
            assert_eq!(resp.status(), status, "{who} reading {path}");
        }
    }
    // Editing: only the author; an owner may not edit someone else's comment.
    let edit = json!({ "body": "edited" });
    for (who, token, status) in [
        ("owner", Some(&team.owner.access), 403),
        ("viewer", Some(&team.viewer.access), 403),
        ("outsider", Some(&team.outsider.access), 404),
        ("removed member", Some(&removed.access), 404),
        ("anonymous", None, 401),
        ("author", Some(&team.member.access), 200),
    ] {
        let resp = app.patch(&one, token.map(String::as_str), &edit).await;
        assert_eq!(resp.status(), status, "{who} editing");
    }
    // A removed member can neither edit nor delete what they wrote.
    let theirs = format!("/comments/{}", str_of(&removed_comment, "id"));
    assert_eq!(
        app.patch(&theirs, Some(&removed.access), &edit)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.delete(&theirs, Some(&removed.access)).await.status(),
        404
    );
    // Deleting: viewers, outsiders and other members cannot; the owner may delete any.
    let owners = comment(&app, &team.owner.access, &team.task_id, "owner's").await;
    let owners = format!("/comments/{}", str_of(&owners, "id"));
    for (who, token, status) in [
        ("member, not the author", Some(&team.member.access), 403),
        ("viewer", Some(&team.viewer.access), 403),
        ("outsider", Some(&team.outsider.access), 404),
        ("anonymous", None, 401),
    ] {
        let resp = app.delete(&owners, token.map(String::as_str)).await;
        assert_eq!(resp.status(), status, "{who} deleting");
    }
    assert_eq!(
        app.delete(&one, Some(&team.member.access)).await.status(),
        204
    );
    assert_eq!(
        app.delete(&theirs, Some(&team.owner.access)).await.status(),
        204
    );
    assert_eq!(
        app.delete(&owners, Some(&team.owner.access)).await.status(),
        204
    );
    for path in [&one, &theirs, &owners] {
        assert_eq!(app.get(path, Some(&team.owner.access)).await.status(), 404);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_comment_changes_the_tasks_count_version_and_etag_an_edit_does_not() {
    let app = spawn_app().await;
    let team = app.team().await;
    let task = format!("/tasks/{}", team.task_id);
    let token = Some(team.member.access.as_str());
    let before = body(app.get(&task, token).await, 200).await;
    assert_eq!(
        (before["comment_count"].clone(), before["version"].clone()),
        (json!(0), json!(1))
    );
    let c = comment(&app, &team.member.access, &team.task_id, "first").await;
    let read = app
        .req(Method::GET, &task, token)
        .header("If-None-Match", "\"v1\"")
        .send()
        .await
        .unwrap();
    // The old ETag no longer matches: the document changed.
    assert_eq!(header(&read, "etag"), "\"v2\"");
    let after = body(read, 200).await;
    assert_eq!(after["comment_count"], 1);
    assert_eq!(after["version"], 2);
    assert_eq!(after["title"], before["title"]);
    assert_eq!(after["updated_at"], before["updated_at"]);
    // The task list shows the same document.
    let page = body(
        app.get(&format!("/projects/{}/tasks", team.project_id), token)
            .await,
        200,
    )
    .await;
    assert_eq!(page["items"][0], after);
    // A task change based on the version before the comment is refused.
    let stale = app
        .req(Method::PATCH, &task, token)
        .header("If-Match", "\"v1\"")
        .json(&json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    problem(stale, 412).await;
    // Editing a comment leaves the task's document alone.
    let one = format!("/comments/{}", str_of(&c, "id"));
    body(
        app.patch(&one, token, &json!({"body": "edited"})).await,
        200,
    )
    .await;
    let edited = body(app.get(&task, token).await, 200).await;
    assert_eq!(edited["version"], 2);
    comment(&app, &team.owner.access, &team.task_id, "second").await;
    assert_eq!(
        body(app.get(&task, token).await, 200).await["comment_count"],
        2
    );
    assert_eq!(app.delete(&one, token).await.status(), 204);
    let last = body(app.get(&task, token).await, 200).await;
    assert_eq!(
        (last["comment_count"].clone(), last["version"].clone()),
        (json!(1), json!(4))
    );
    app.stop().await;
}

#[tokio::test]
async fn comment_edits_and_deletions_honour_if_match() {
    let app = spawn_app().await;
    let team = app.team().await;
    let c = comment(&app, &team.member.access, &team.task_id, "v1 text").await;
    let one = format!("/comments/{}", str_of(&c, "id"));
    let token = Some(team.member.access.as_str());
    let edit = |tag: &'static str, text: &'static str| {
        app.req(Method::PATCH, &one, token)
            .header("If-Match", tag)
            .json(&json!({ "body": text }))
            .send()
    };
    let resp = edit("\"v1\"", "v2 text").await.unwrap();
    assert_eq!(header(&resp, "etag"), "\"v2\"");
    let edited = body(resp, 200).await;
    assert_eq!(edited["body"], "v2 text");
    assert_eq!(edited["version"], 2);
    assert_ne!(edited["updated_at"], edited["created_at"]);
    problem(edit("\"v1\"", "lost update").await.unwrap(), 412).await;
    // The same text again is no change: no new version.
    assert_eq!(
        body(edit("\"v2\"", "v2 text").await.unwrap(), 200).await["version"],
        2
    );
    let stale_delete = app
        .req(Method::DELETE, &one, token)
        .header("If-Match", "\"v1\"")
        .send()
        .await
        .unwrap();
    problem(stale_delete, 412).await;
    let delete = app
        .req(Method::DELETE, &one, token)
        .header("If-Match", "\"v2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    app.stop().await;
}

#[tokio::test]
async fn comment_bodies_outside_the_limits_are_refused_naming_body() {
    let app = spawn_app().await;
    let team = app.team().await;
    let list = comments_of(&team.task_id);
    let token = Some(team.member.access.as_str());
    for bad in [
        json!({ "body": "" }),
        json!({ "body": " \n\t " }),
        json!({ "body": "x".repeat(10_001) }),
        json!({ "body": "bell \u{7}" }),
        json!({ "body": 5 }),
        json!({}),
    ] {
        invalid(app.post(&list, token, &bad).await, "body").await;
    }
    problem(
        app.post(&list, token, &json!({"body": "ok", "extra": 1}))
            .await,
        400,
    )
    .await;
    // 10000 characters (not bytes) is the limit.
    let longest = "é".repeat(10_000);
    let c = comment(&app, &team.member.access, &team.task_id, &longest).await;
    assert_eq!(c["body"], longest);
    let one = format!("/comments/{}", str_of(&c, "id"));
    invalid(app.patch(&one, token, &json!({"body": ""})).await, "body").await;
    // Unknown ids are 404 for every operation; a malformed id is a 400.
    let unknown = uuid::Uuid::now_v7();
    let resp = app
        .post(
            &comments_of(&unknown.to_string()),
            token,
            &json!({"body": "x"}),
        )
        .await;
    problem(resp, 404).await;
    problem(
        app.get(&comments_of(&unknown.to_string()), token).await,
        404,
    )
    .await;
    problem(app.get(&format!("/comments/{unknown}"), token).await, 404).await;
    problem(
        app.delete(&format!("/comments/{unknown}"), token).await,
        404,
    )
    .await;
    problem(app.get("/comments/not-a-uuid", token).await, 400).await;
    app.stop().await;
}

#[tokio::test]
async fn comment_writes_are_audited_with_the_task_and_the_project() {
    let app = spawn_app().await;
    let team = app.team().await;
    let c = comment(&app, &team.member.access, &team.task_id, "audited").await;
    let one = format!("/comments/{}", str_of(&c, "id"));
    let token = Some(team.member.access.as_str());
    body(
        app.patch(&one, token, &json!({"body": "changed"})).await,
        200,
    )
    .await;
    assert_eq!(
        app.delete(&one, Some(&team.owner.access)).await.status(),
        204
    );
    let audit = body(
        app.get(
            &format!("/projects/{}/audit?limit=100", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    let entries: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity_type"] == "comment")
        .collect();
    let mut actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["comment.created", "comment.deleted", "comment.updated"]
    );
    for entry in &entries {
        assert_eq!(entry["entity_id"], c["id"]);
        assert_eq!(entry["project_id"], team.project_id.as_str());
        assert_eq!(entry["summary"]["task_id"], team.task_id.as_str());
        let actor = if entry["action"] == "comment.deleted" {
            &team.owner
        } else {
            &team.member
        };
        assert_eq!(entry["actor_id"], actor.id.as_str());
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_task_deletes_its_comments() {
    let app = spawn_app().await;
    let team = app.team().await;
    let c = comment(
        &app,
        &team.member.access,
        &team.task_id,
        "goes with the task",
    )
    .await;
    let token = Some(team.owner.access.as_str());
    assert_eq!(
        app.delete(&format!("/tasks/{}", team.task_id), token)
            .await
            .status(),
        204
    );
    problem(
        app.get(&format!("/comments/{}", str_of(&c, "id")), token)
            .await,
        404,
    )
    .await;
    problem(app.get(&comments_of(&team.task_id), token).await, 404).await;
    // Not only hidden: the rows are gone.
    let mut store = app.server.state.domain.read().await.unwrap();
    let task_id = team.task_id.parse().unwrap();
    let left = store.list_comments(task_id, None, 10).await.unwrap();
    assert!(left.is_empty());
    drop(store);
    app.stop().await;
}

#[tokio::test]
async fn a_long_discussion_never_fails_a_comment_write() {
    let app = spawn_app().await;
    let team = app.team().await;
    let list = comments_of(&team.task_id);
    // 120 comments of 10,000 characters of distinct words: more lexemes than one PostgreSQL
    // tsvector can hold (1 MiB), were they all indexed.
    for i in 0..120 {
        let words: Vec<String> = (0..300)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        let mut text = words.join(" ");
        if i == 0 {
            text.insert_str(0, "firstword ");
        }
        text.truncate(10_000);
        let resp = app
            .post(&list, Some(&team.member.access), &json!({ "body": text }))
            .await;
        assert_eq!(resp.status(), 201, "comment {i}");
    }
    let task = body(
        app.get(
            &format!("/tasks/{}", team.task_id),
            Some(&team.member.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(task["comment_count"], 120);
    // The oldest comments stay searchable.
    let path = format!("/projects/{}/tasks?q=firstword", team.project_id);
    let found = body(app.get(&path, Some(&team.member.access)).await, 200).await;
    assert_eq!(ids(&found), vec![team.task_id.clone()]);
    app.stop().await;
}
