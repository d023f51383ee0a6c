//! The caller's own account: read, rename, change email and password.

use serde_json::json;

use crate::helpers::{
    PASSWORD, body, invalid, problem, read, spawn_app, statements_run, str_of, unique_email,
};

#[tokio::test]
async fn get_me_returns_the_callers_account() {
    let app = spawn_app().await;
    let user = app.user().await;
    let me = body(app.get("/users/me", Some(&user.access)).await, 200).await;
    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["email"], user.email.as_str());
    assert_eq!(me["role"], "user");
    assert_eq!(me["disabled"], false);
    app.stop().await;
}

#[tokio::test]
async fn patch_me_changes_the_display_name() {
    let app = spawn_app().await;
    let user = app.user().await;
    let before = body(app.get("/users/me", Some(&user.access)).await, 200).await;
    let updated = body(
        app.patch(
            "/users/me",
            Some(&user.access),
            &json!({"display_name": "Renamed"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["display_name"], "Renamed");
    assert_eq!(updated["email"], user.email.as_str());
    let time = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(&str_of(v, "updated_at")).unwrap()
    };
    assert!(time(&updated) > time(&before), "updated_at moves forward");
    let me = body(app.get("/users/me", Some(&user.access)).await, 200).await;
    assert_eq!(me["display_name"], "Renamed");
    app.stop().await;
}

#[tokio::test]
async fn changing_email_or_password_needs_the_right_current_password() {
    let app = spawn_app().await;
    let user = app.user().await;
    let new_email = unique_email();
    let new_password = "a different long password";
    for change in [
        json!({"email": new_email}),
        json!({"email": new_email, "current_password": "not my password at all"}),
        json!({"new_password": new_password}),
        json!({"new_password": new_password, "current_password": "not my password at all"}),
    ] {
        let resp = app.patch("/users/me", Some(&user.access), &change).await;
        invalid(resp, "current_password").await;
    }
    let me = body(app.get("/users/me", Some(&user.access)).await, 200).await;
    assert_eq!(me["email"], user.email.as_str());
    problem(app.login_response(&user.email, new_password).await, 401).await;
    app.stop().await;
}

#[tokio::test]
async fn changing_the_email_with_the_current_password_moves_the_login() {
    let app = spawn_app().await;
    let user = app.user().await;
    let new_email = unique_email();
    let change = json!({"email": new_email, "current_password": PASSWORD});
    let updated = body(
        app.patch("/users/me", Some(&user.access), &change).await,
        200,
    )
    .await;
    assert_eq!(updated["email"], new_email.as_str());
    app.login(&new_email, PASSWORD).await;
    problem(app.login_response(&user.email, PASSWORD).await, 401).await;
    app.stop().await;
}

#[tokio::test]
async fn changing_the_email_to_one_already_taken_returns_409() {
    let app = spawn_app().await;
    let (user, other) = futures::join!(app.user(), app.user());
    let change = json!({"email": other.email, "current_password": PASSWORD});
    problem(
        app.patch("/users/me", Some(&user.access), &change).await,
        409,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_revokes_every_session_of_the_user() {
    let app = spawn_app().await;
    let user = app.user().await;
    let second = app.login(&user.email, PASSWORD).await;
    let new_password = "a brand new long password";
    let change = json!({"current_password": PASSWORD, "new_password": new_password});
    body(
        app.patch("/users/me", Some(&user.access), &change).await,
        200,
    )
    .await;
    for session in [
        (&user.access, &user.refresh),
        (&second.access, &second.refresh),
    ] {
        problem(app.get("/users/me", Some(session.0)).await, 401).await;
        problem(app.refresh(session.1).await, 401).await;
    }
    problem(app.login_response(&user.email, PASSWORD).await, 401).await;
    let fresh = app.login(&user.email, new_password).await;
    body(app.get("/users/me", Some(&fresh.access)).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn a_new_password_outside_12_to_128_characters_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    for bad in ["short-pw-11".to_owned(), "p".repeat(129)] {
        let change = json!({"current_password": PASSWORD, "new_password": bad});
        invalid(
            app.patch("/users/me", Some(&user.access), &change).await,
            "new_password",
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn no_user_facing_response_contains_a_password_hash() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app.user().await;
    let project = app.create_project(&user.access, "Hash check").await;
    let project_id = str_of(&project, "id");
    app.add_member(&user.access, &project_id, &admin.id, "viewer")
        .await;
    for (path, token) in [
        ("/users/me".to_owned(), &user.access),
        ("/admin/users?limit=100".to_owned(), &admin.access),
        (format!("/projects/{project_id}/members"), &user.access),
        (format!("/projects/{project_id}/audit"), &user.access),
        ("/admin/audit?limit=100".to_owned(), &admin.access),
    ] {
        let (status, _, text) = read(app.get(&path, Some(token)).await).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(
            !text.contains(PASSWORD),
            "{path} leaks the password: {text}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn get_me_is_answered_from_the_cache_without_a_database_read_and_sees_changes_at_once() {
    let app = spawn_app().await;
    let user = app.user().await;
    body(app.get("/users/me", Some(&user.access)).await, 200).await;
    let before = statements_run(&app.metrics().await);
    assert!(before > 0.0, "the histograms count statements");
    for _ in 0..20 {
        let me = body(app.get("/users/me", Some(&user.access)).await, 200).await;
        assert_eq!(me["email"], user.email.as_str());
    }
    assert_eq!(
        statements_run(&app.metrics().await),
        before,
        "GET /users/me ran SQL while its cache entry was valid"
    );

    let renamed = app
        .patch(
            "/users/me",
            Some(&user.access),
            &json!({"display_name": "Renamed at once"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let me = body(app.get("/users/me", Some(&user.access)).await, 200).await;
    assert_eq!(me["display_name"], "Renamed at once");
    app.stop().await;
}
