//! Conditional requests on tasks: ETag, If-None-Match (304) and If-Match (412).

use reqwest::Method;
use serde_json::json;

use crate::helpers::{body, header, problem, spawn_app, str_of};

#[tokio::test]
async fn get_returns_the_versions_etag_and_if_none_match_gives_304() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let token = Some(team.owner.access.as_str());
    let resp = app.get(&path, token).await;
    assert_eq!(header(&resp, "etag"), "\"v1\"");
    for tag in ["\"v1\"", "W/\"v1\"", "\"v9\", \"v1\""] {
        let resp = app
            .req(Method::GET, &path, token)
            .header("If-None-Match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "If-None-Match: {tag}");
        assert_eq!(resp.text().await.unwrap(), "");
    }
    body(
        app.patch(&path, token, &json!({"title": "Changed"})).await,
        200,
    )
    .await;
    let resp = app
        .req(Method::GET, &path, token)
        .header("If-None-Match", "\"v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "etag"), "\"v2\"");
    assert_eq!(body(resp, 200).await["title"], "Changed");
    app.stop().await;
}

#[tokio::test]
async fn patch_with_a_stale_if_match_returns_412_and_changes_nothing() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let token = Some(team.owner.access.as_str());
    body(
        app.patch(&path, token, &json!({"title": "Second"})).await,
        200,
    )
    .await;
    let stale = app
        .req(Method::PATCH, &path, token)
        .header("If-Match", "\"v1\"")
        .json(&json!({"title": "Lost"}));
    problem(stale.send().await.unwrap(), 412).await;
    let current = body(app.get(&path, token).await, 200).await;
    assert_eq!(
        (current["title"].clone(), current["version"].clone()),
        (json!("Second"), json!(2))
    );
    app.stop().await;
}

#[tokio::test]
async fn patch_with_the_current_if_match_succeeds_and_returns_the_next_etag() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let token = Some(team.member.access.as_str());
    let fresh = app
        .req(Method::PATCH, &path, token)
        .header("If-Match", "\"v1\"")
        .json(&json!({"status": "done"}));
    let resp = fresh.send().await.unwrap();
    assert_eq!(header(&resp, "etag"), "\"v2\"");
    let task = body(resp, 200).await;
    assert_eq!(
        (task["status"].clone(), task["version"].clone()),
        (json!("done"), json!(2))
    );
    let any = app
        .req(Method::PATCH, &path, token)
        .header("If-Match", "*")
        .json(&json!({"status": "todo"}));
    assert_eq!(body(any.send().await.unwrap(), 200).await["version"], 3);
    let weak = app
        .req(Method::PATCH, &path, token)
        .header("If-Match", "W/\"v3\"")
        .json(&json!({"status": "done"}));
    problem(weak.send().await.unwrap(), 412).await;
    app.stop().await;
}

#[tokio::test]
async fn delete_with_a_stale_if_match_returns_412_and_keeps_the_task() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let token = Some(team.owner.access.as_str());
    let updated = body(
        app.patch(&path, token, &json!({"priority": "high"})).await,
        200,
    )
    .await;
    assert_eq!(updated["version"], 2);
    let stale = app
        .req(Method::DELETE, &path, token)
        .header("If-Match", "\"v1\"");
    problem(stale.send().await.unwrap(), 412).await;
    body(app.get(&path, token).await, 200).await;
    let current = app
        .req(Method::DELETE, &path, token)
        .header("If-Match", "\"v2\"");
    body(current.send().await.unwrap(), 204).await;
    problem(app.get(&path, token).await, 404).await;
    app.stop().await;
}

#[tokio::test]
async fn the_etag_always_matches_the_version_in_the_body() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let token = Some(team.owner.access.as_str());
    for title in ["a", "b", "c"] {
        let resp = app.patch(&path, token, &json!({"title": title})).await;
        let etag = header(&resp, "etag");
        let task = body(resp, 200).await;
        assert_eq!(etag, format!("\"v{}\"", task["version"]));
        let resp = app.get(&path, token).await;
        assert_eq!(header(&resp, "etag"), etag);
        assert_eq!(str_of(&body(resp, 200).await, "title"), title);
    }
    app.stop().await;
}
