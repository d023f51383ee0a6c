//! Administration of users: listing with filters, role changes, disabling.

use serde_json::json;

use crate::helpers::{PASSWORD, body, ids, invalid, problem, spawn_app, str_of};

#[tokio::test]
async fn admin_lists_users_with_search_role_and_disabled_filters() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (alice, bob) = futures::join!(app.user(), app.user());
    let page = body(
        app.get("/admin/users?limit=100", Some(&admin.access)).await,
        200,
    )
    .await;
    let all = ids(&page);
    for id in [&admin.id, &alice.id, &bob.id] {
        assert!(all.contains(id), "{id} missing from {page}");
    }
    let local_part = alice.email.split('@').next().unwrap();
    let found = body(
        app.get(&format!("/admin/users?q={local_part}"), Some(&admin.access))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&found), vec![alice.id.clone()]);
    let admins = body(
        app.get("/admin/users?role=admin", Some(&admin.access))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&admins), vec![admin.id.clone()]);
    let path = format!("/admin/users/{}", bob.id);
    body(
        app.patch(&path, Some(&admin.access), &json!({"disabled": true}))
            .await,
        200,
    )
    .await;
    let disabled = body(
        app.get("/admin/users?disabled=true", Some(&admin.access))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&disabled), vec![bob.id.clone()]);
    let enabled = ids(&body(
        app.get("/admin/users?disabled=false&limit=100", Some(&admin.access))
            .await,
        200,
    )
    .await);
    assert!(
        enabled.contains(&alice.id) && !enabled.contains(&bob.id),
        "{enabled:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_user_list_is_paginated_without_duplicates() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    futures::join!(app.user(), app.user());
    let mut seen = Vec::new();
    let mut path = "/admin/users?limit=1".to_owned();
    loop {
        let page = body(app.get(&path, Some(&admin.access)).await, 200).await;
        assert!(ids(&page).len() <= 1, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/users?limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 3, "more pages than users: {seen:?}");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (3, 3), "{seen:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_can_promote_a_user_who_then_reaches_admin_routes() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app.user().await;
    problem(app.get("/admin/users", Some(&user.access)).await, 403).await;
    let path = format!("/admin/users/{}", user.id);
    let promoted = body(
        app.patch(&path, Some(&admin.access), &json!({"role": "admin"}))
            .await,
        200,
    )
    .await;
    assert_eq!(promoted["role"], "admin");
    let tokens = app.login(&user.email, PASSWORD).await;
    body(app.get("/admin/users", Some(&tokens.access)).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_refresh_or_use_an_existing_token() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let path = format!("/admin/users/{}", user.id);
    let disabled = body(
        app.patch(&path, Some(&admin.access), &json!({"disabled": true}))
            .await,
        200,
    )
    .await;
    assert_eq!(disabled["disabled"], true);
    problem(app.get("/users/me", Some(&user.access)).await, 401).await;
    problem(app.refresh(&user.refresh).await, 401).await;
    problem(app.login_response(&user.email, PASSWORD).await, 401).await;

    let enabled = body(
        app.patch(&path, Some(&admin.access), &json!({"disabled": false}))
            .await,
        200,
    )
    .await;
    assert_eq!(enabled["disabled"], false);
    // Disabling revoked the sessions: enabling again does not bring the old tokens back.
    problem(app.get("/users/me", Some(&user.access)).await, 401).await;
    problem(app.refresh(&user.refresh).await, 401).await;
    let tokens = app.login(&user.email, PASSWORD).await;
    body(app.get("/users/me", Some(&tokens.access)).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_cannot_demote_or_disable_themselves() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let path = format!("/admin/users/{}", admin.id);
    problem(
        app.patch(&path, Some(&admin.access), &json!({"role": "user"}))
            .await,
        409,
    )
    .await;
    problem(
        app.patch(&path, Some(&admin.access), &json!({"disabled": true}))
            .await,
        409,
    )
    .await;
    let me = body(app.get("/users/me", Some(&admin.access)).await, 200).await;
    assert_eq!(
        (me["role"].clone(), me["disabled"].clone()),
        (json!("admin"), json!(false))
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_user_updates_refuse_unknown_users_and_unknown_roles() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let unknown = format!("/admin/users/{}", uuid::Uuid::new_v4());
    problem(
        app.patch(&unknown, Some(&admin.access), &json!({"disabled": true}))
            .await,
        404,
    )
    .await;
    let path = format!("/admin/users/{}", user.id);
    invalid(
        app.patch(&path, Some(&admin.access), &json!({"role": "superuser"}))
            .await,
        "role",
    )
    .await;
    invalid(
        app.patch(&path, Some(&admin.access), &json!({"disabled": "yes"}))
            .await,
        "disabled",
    )
    .await;
    let me = body(app.get("/users/me", Some(&user.access)).await, 200).await;
    assert_eq!(str_of(&me, "role"), "user");
    app.stop().await;
}

#[tokio::test]
async fn admin_routes_refuse_non_admins_with_403_and_anonymous_callers_with_401() {
    let app = spawn_app().await;
    let user = app.user().await;
    let path = format!("/admin/users/{}", user.id);
    for token in [Some(user.access.as_str()), None] {
        let status = if token.is_some() { 403 } else { 401 };
        problem(app.get("/admin/users", token).await, status).await;
        problem(
            app.patch(&path, token, &json!({"role": "admin"})).await,
            status,
        )
        .await;
        problem(app.get("/admin/audit", token).await, status).await;
    }
    app.stop().await;
}
