//! The administrators' audit log: filters, account changes, entries that outlive their project.

use serde_json::{Value, json};

use crate::audit::{entries, find, request_id};
use crate::helpers::{PASSWORD, problem, spawn_app, str_of};

#[tokio::test]
async fn the_admin_audit_filters_by_project_actor_action_and_entity_type() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let team = app.team().await;
    let other = str_of(
        &app.create_project(&team.member.access, "Elsewhere").await,
        "id",
    );
    let t = admin.access.as_str();
    let by_project = entries(
        &app,
        &format!("/admin/audit?limit=100&project_id={}", team.project_id),
        t,
    )
    .await;
    assert!(
        by_project.len() >= 4
            && by_project
                .iter()
                .all(|e| e["project_id"] == team.project_id.as_str())
    );
    let by_actor = entries(
        &app,
        &format!("/admin/audit?limit=100&actor_id={}", team.member.id),
        t,
    )
    .await;
    assert!(
        by_actor
            .iter()
            .any(|e| e["project_id"] == other.as_str() && e["action"] == "project.created")
    );
    assert!(
        by_actor
            .iter()
            .all(|e| e["actor_id"] == team.member.id.as_str()),
        "{by_actor:#?}"
    );
    let created = entries(&app, "/admin/audit?limit=100&action=project.created", t).await;
    assert_eq!(created.len(), 2, "{created:#?}");
    let users = entries(&app, "/admin/audit?limit=100&entity_type=user", t).await;
    assert!(users.iter().all(|e| e["entity_type"] == "user"));
    let registered: Vec<&Value> = users
        .iter()
        .filter(|e| e["action"] == "user.registered")
        .collect();
    assert!(
        registered
            .iter()
            .any(|e| e["entity_id"] == team.viewer.id.as_str()),
        "{users:#?}"
    );
    problem(app.get("/admin/audit", Some(&team.owner.access)).await, 403).await;
    app.stop().await;
}

#[tokio::test]
async fn account_changes_are_audited_without_passwords_or_tokens() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let new_password = "another very long password";
    let change = json!({"current_password": PASSWORD, "new_password": new_password, "display_name": "Changed"});
    let (updated, _) = request_id(
        app.patch("/users/me", Some(&user.access), &change).await,
        200,
    )
    .await;
    let admin_path = format!("/admin/users/{}", user.id);
    let (promoted, _) = request_id(
        app.patch(&admin_path, Some(&admin.access), &json!({"role": "admin"}))
            .await,
        200,
    )
    .await;
    let (disabled, _) = request_id(
        app.patch(&admin_path, Some(&admin.access), &json!({"disabled": true}))
            .await,
        200,
    )
    .await;
    let (enabled, _) = request_id(
        app.patch(
            &admin_path,
            Some(&admin.access),
            &json!({"disabled": false}),
        )
        .await,
        200,
    )
    .await;
    let log = entries(
        &app,
        "/admin/audit?limit=100&entity_type=user",
        &admin.access,
    )
    .await;
    let mine: Vec<Value> = log
        .iter()
        .filter(|e| e["entity_id"] == user.id.as_str())
        .cloned()
        .collect();
    assert_eq!(
        find(&mine, "user.updated", &updated)["actor_id"],
        user.id.as_str()
    );
    for (action, id) in [
        ("user.role_changed", &promoted),
        ("user.disabled", &disabled),
        ("user.enabled", &enabled),
    ] {
        assert_eq!(find(&mine, action, id)["actor_id"], admin.id.as_str());
    }
    assert!(
        mine.iter()
            .any(|e| e["action"] == "user.registered" && e["actor_id"] != admin.id.as_str())
    );
    let text = serde_json::to_string(&mine).unwrap();
    for secret in [
        PASSWORD,
        new_password,
        &user.access,
        &user.refresh,
        "$argon2",
    ] {
        assert!(
            !text.contains(secret),
            "an audit summary contains a secret: {text}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_project_is_audited_and_the_entry_outlives_the_project() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let team = app.team().await;
    let (deleted, _) = request_id(
        app.delete(
            &format!("/projects/{}", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        204,
    )
    .await;
    let log = entries(
        &app,
        "/admin/audit?limit=100&action=project.deleted",
        &admin.access,
    )
    .await;
    let entry = find(&log, "project.deleted", &deleted);
    assert_eq!(
        (entry["entity_id"].as_str(), entry["actor_id"].as_str()),
        (Some(team.project_id.as_str()), Some(team.owner.id.as_str()))
    );
    let older = entries(
        &app,
        &format!("/admin/audit?limit=100&project_id={}", team.project_id),
        &admin.access,
    )
    .await;
    assert!(
        older.iter().any(|e| e["action"] == "task.created"),
        "older entries are kept: {older:#?}"
    );
    app.stop().await;
}
