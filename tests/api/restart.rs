//! Data lives in the database, not in the process: it survives stopping and starting again.

use serde_json::json;

use crate::helpers::{PASSWORD, body, header, problem, spawn_app, str_of};

#[tokio::test]
async fn users_projects_tasks_and_audit_survive_a_restart() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/tasks/{}", team.task_id);
    let change = json!({"tags": ["kept"], "due_at": "2032-02-02T02:02:02Z", "priority": "urgent"});
    let before = body(
        app.patch(&path, Some(&team.owner.access), &change).await,
        200,
    )
    .await;
    let members_before = body(
        app.get(
            &format!("/projects/{}/members", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    let audit_before = body(
        app.get(
            &format!("/projects/{}/audit?limit=100", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;

    let app = app.restart().await;

    let resp = app.get(&path, Some(&team.member.access)).await;
    assert_eq!(header(&resp, "etag"), "\"v2\"");
    assert_eq!(body(resp, 200).await, before);
    let members = body(
        app.get(
            &format!("/projects/{}/members", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(members, members_before);
    let audit = body(
        app.get(
            &format!("/projects/{}/audit?limit=100", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(audit, audit_before);
    let tokens = app.login(&team.viewer.email, PASSWORD).await;
    let me = body(app.get("/users/me", Some(&tokens.access)).await, 200).await;
    assert_eq!(str_of(&me, "id"), team.viewer.id);
    app.stop().await;
}

#[tokio::test]
async fn sessions_and_revocations_survive_a_restart() {
    let app = spawn_app().await;
    let (kept, revoked) = futures::join!(app.user(), app.user());
    body(
        app.send(
            reqwest::Method::POST,
            "/auth/logout",
            Some(&revoked.access),
            None,
        )
        .await,
        204,
    )
    .await;

    let app = app.restart().await;

    body(app.get("/users/me", Some(&kept.access)).await, 200).await;
    body(app.refresh(&kept.refresh).await, 200).await;
    problem(app.get("/users/me", Some(&revoked.access)).await, 401).await;
    problem(app.refresh(&revoked.refresh).await, 401).await;
    app.stop().await;
}
