//! Project membership: add, change role, list, remove; the last owner is protected.

use serde_json::{Value, json};

use crate::helpers::{body, invalid, names, problem, spawn_app, str_of};

fn role_of(members: &Value, user_id: &str) -> Option<String> {
    members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user_id)
        .map(|m| str_of(m, "role"))
}

#[tokio::test]
async fn the_owner_adds_a_member_who_then_appears_in_the_member_list() {
    let app = spawn_app().await;
    let (owner, user) = futures::join!(app.user(), app.user());
    let project_id = str_of(&app.create_project(&owner.access, "Crew").await, "id");
    let member = app
        .add_member(&owner.access, &project_id, &user.id, "member")
        .await;
    assert_eq!(member["user_id"], user.id.as_str());
    assert_eq!(member["email"], user.email.as_str());
    assert_eq!(member["display_name"], "Test User");
    assert_eq!(member["role"], "member");
    assert!(chrono::DateTime::parse_from_rfc3339(&str_of(&member, "added_at")).is_ok());
    let path = format!("/projects/{project_id}/members");
    let members = body(app.get(&path, Some(&user.access)).await, 200).await;
    assert_eq!(role_of(&members, &owner.id).as_deref(), Some("owner"));
    assert_eq!(role_of(&members, &user.id).as_deref(), Some("member"));
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    let project = body(
        app.get(&format!("/projects/{project_id}"), Some(&user.access))
            .await,
        200,
    )
    .await;
    assert_eq!(project["role"], "member");
    app.stop().await;
}

#[tokio::test]
async fn putting_an_existing_member_changes_their_role() {
    let app = spawn_app().await;
    let team = app.team().await;
    let changed = app
        .add_member(
            &team.owner.access,
            &team.project_id,
            &team.viewer.id,
            "member",
        )
        .await;
    assert_eq!(changed["role"], "member");
    let path = format!("/projects/{}/members", team.project_id);
    let members = body(app.get(&path, Some(&team.owner.access)).await, 200).await;
    assert_eq!(
        role_of(&members, &team.viewer.id).as_deref(),
        Some("member")
    );
    assert_eq!(members["items"].as_array().unwrap().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn adding_an_unknown_user_returns_404_and_an_unknown_role_400() {
    let app = spawn_app().await;
    let team = app.team().await;
    let unknown = format!(
        "/projects/{}/members/{}",
        team.project_id,
        uuid::Uuid::new_v4()
    );
    problem(
        app.put(
            &unknown,
            Some(&team.owner.access),
            &json!({"role": "member"}),
        )
        .await,
        404,
    )
    .await;
    let path = format!("/projects/{}/members/{}", team.project_id, team.outsider.id);
    invalid(
        app.put(&path, Some(&team.owner.access), &json!({"role": "admin"}))
            .await,
        "role",
    )
    .await;
    names(
        app.put(&path, Some(&team.owner.access), &json!({})).await,
        "role",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let app = spawn_app().await;
    let team = app.team().await;
    let own = format!("/projects/{}/members/{}", team.project_id, team.owner.id);
    problem(
        app.put(&own, Some(&team.owner.access), &json!({"role": "member"}))
            .await,
        409,
    )
    .await;
    problem(app.delete(&own, Some(&team.owner.access)).await, 409).await;
    // With a second owner, the first may step down.
    app.add_member(
        &team.owner.access,
        &team.project_id,
        &team.member.id,
        "owner",
    )
    .await;
    let demoted = body(
        app.put(&own, Some(&team.owner.access), &json!({"role": "member"}))
            .await,
        200,
    )
    .await;
    assert_eq!(demoted["role"], "member");
    let second = format!("/projects/{}/members/{}", team.project_id, team.member.id);
    problem(app.delete(&second, Some(&team.member.access)).await, 409).await;
    app.stop().await;
}

#[tokio::test]
async fn a_member_can_leave_and_then_no_longer_sees_the_project() {
    let app = spawn_app().await;
    let team = app.team().await;
    let own = format!("/projects/{}/members/{}", team.project_id, team.member.id);
    body(app.delete(&own, Some(&team.member.access)).await, 204).await;
    problem(
        app.get(
            &format!("/projects/{}", team.project_id),
            Some(&team.member.access),
        )
        .await,
        404,
    )
    .await;
    problem(
        app.get(
            &format!("/tasks/{}", team.task_id),
            Some(&team.member.access),
        )
        .await,
        404,
    )
    .await;
    let members = body(
        app.get(
            &format!("/projects/{}/members", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(role_of(&members, &team.member.id), None);
    app.stop().await;
}

#[tokio::test]
async fn the_owner_removes_a_member_but_members_cannot_remove_each_other() {
    let app = spawn_app().await;
    let team = app.team().await;
    let viewer = format!("/projects/{}/members/{}", team.project_id, team.viewer.id);
    problem(app.delete(&viewer, Some(&team.member.access)).await, 403).await;
    body(app.delete(&viewer, Some(&team.owner.access)).await, 204).await;
    problem(
        app.get(
            &format!("/projects/{}", team.project_id),
            Some(&team.viewer.access),
        )
        .await,
        404,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_member_list_is_paginated() {
    let app = spawn_app().await;
    let team = app.team().await;
    let path = format!("/projects/{}/members?limit=2", team.project_id);
    let first = body(app.get(&path, Some(&team.owner.access)).await, 200).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = str_of(&first, "next_cursor");
    let second = body(
        app.get(&format!("{path}&cursor={cursor}"), Some(&team.owner.access))
            .await,
        200,
    )
    .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let mut all: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| str_of(m, "user_id"))
        })
        .collect();
    all.sort();
    let mut expected = vec![team.owner.id, team.member.id, team.viewer.id];
    expected.sort();
    assert_eq!(all, expected);
    app.stop().await;
}
