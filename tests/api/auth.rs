//! Registration, login, refresh-token rotation with reuse detection, logout.

use reqwest::Method;

use crate::helpers::{PASSWORD, body, header, problem, spawn_app, str_of, unique_email};

#[tokio::test]
async fn register_returns_201_with_the_user_and_a_location() {
    let app = spawn_app().await;
    let email = unique_email();
    let resp = app.register(&email, PASSWORD, "Ada Lovelace").await;
    assert_eq!(header(&resp, "location"), "/api/v1/users/me");
    let user = body(resp, 201).await;
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["display_name"], "Ada Lovelace");
    assert_eq!(user["role"], "user");
    assert_eq!(user["disabled"], false);
    assert!(uuid::Uuid::parse_str(&str_of(&user, "id")).is_ok());
    assert!(user.get("password").is_none());
    for key in ["created_at", "updated_at"] {
        assert!(
            chrono::DateTime::parse_from_rfc3339(&str_of(&user, key)).is_ok(),
            "{key}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn register_with_a_taken_email_returns_409_whatever_its_case() {
    let app = spawn_app().await;
    let email = unique_email();
    body(app.register(&email, PASSWORD, "First").await, 201).await;
    problem(app.register(&email, PASSWORD, "Second").await, 409).await;
    problem(
        app.register(&email.to_uppercase(), PASSWORD, "Third").await,
        409,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn login_returns_a_bearer_token_pair_whose_access_token_works() {
    let app = spawn_app().await;
    let email = unique_email();
    body(app.register(&email, PASSWORD, "Grace").await, 201).await;
    let pair = body(app.login_response(&email, PASSWORD).await, 200).await;
    assert_eq!(pair["token_type"], "Bearer");
    assert!(pair["expires_in"].as_u64().unwrap() > 0, "{pair}");
    assert!(pair["refresh_expires_in"].as_u64().unwrap() > 0, "{pair}");
    assert_ne!(pair["access_token"], pair["refresh_token"]);
    let me = body(
        app.get("/users/me", Some(&str_of(&pair, "access_token")))
            .await,
        200,
    )
    .await;
    assert_eq!(me["email"], email.as_str());
    app.stop().await;
}

#[tokio::test]
async fn login_with_a_wrong_password_or_an_unknown_email_returns_401_with_the_same_detail() {
    let app = spawn_app().await;
    let user = app.user().await;
    let wrong_password = problem(
        app.login_response(&user.email, "not the right password")
            .await,
        401,
    )
    .await;
    let unknown_email = problem(app.login_response(&unique_email(), PASSWORD).await, 401).await;
    assert_eq!(wrong_password["detail"], unknown_email["detail"]);
    app.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_access_token_get_401() {
    let app = spawn_app().await;
    let user = app.user().await;
    problem(app.get("/users/me", None).await, 401).await;
    problem(app.get("/users/me", Some("not-a-jwt")).await, 401).await;
    problem(app.get("/users/me", Some(&user.refresh)).await, 401).await;
    let basic = app
        .req(Method::GET, "/users/me", None)
        .header("Authorization", "Basic dXNlcjpwYXNz");
    problem(basic.send().await.unwrap(), 401).await;
    // A token whose signature or payload was tampered with.
    let mut parts: Vec<String> = user.access.split('.').map(str::to_owned).collect();
    assert_eq!(parts.len(), 3, "the access token is a JWT");
    let mut signature = parts[2].clone().into_bytes();
    signature[0] = if signature[0] == b'A' { b'B' } else { b'A' };
    parts[2] = String::from_utf8(signature).unwrap();
    problem(app.get("/users/me", Some(&parts.join("."))).await, 401).await;
    body(app.get("/users/me", Some(&user.access)).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_the_new_tokens_work() {
    let app = spawn_app().await;
    let user = app.user().await;
    let pair = body(app.refresh(&user.refresh).await, 200).await;
    assert_eq!(pair["token_type"], "Bearer");
    let (access, refresh) = (
        str_of(&pair, "access_token"),
        str_of(&pair, "refresh_token"),
    );
    assert_ne!(refresh, user.refresh);
    body(app.get("/users/me", Some(&access)).await, 200).await;
    body(app.refresh(&refresh).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_session() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other_session = app.login(&user.email, PASSWORD).await;
    let rotated = body(app.refresh(&user.refresh).await, 200).await;
    let (newest_access, newest_refresh) = (
        str_of(&rotated, "access_token"),
        str_of(&rotated, "refresh_token"),
    );
    body(app.get("/users/me", Some(&newest_access)).await, 200).await;

    problem(app.refresh(&user.refresh).await, 401).await;

    problem(app.refresh(&newest_refresh).await, 401).await;
    problem(app.get("/users/me", Some(&newest_access)).await, 401).await;
    problem(app.get("/users/me", Some(&user.access)).await, 401).await;
    // Another login of the same user is another session and keeps working.
    body(app.get("/users/me", Some(&other_session.access)).await, 200).await;
    body(app.refresh(&other_session.refresh).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn refresh_with_an_unknown_token_returns_401() {
    let app = spawn_app().await;
    problem(
        app.refresh("this-refresh-token-was-never-issued").await,
        401,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn logout_revokes_the_sessions_access_and_refresh_tokens_only() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other_session = app.login(&user.email, PASSWORD).await;
    let resp = app
        .send(Method::POST, "/auth/logout", Some(&user.access), None)
        .await;
    assert_eq!(body(resp, 204).await, serde_json::Value::Null);
    problem(app.get("/users/me", Some(&user.access)).await, 401).await;
    problem(app.refresh(&user.refresh).await, 401).await;
    body(app.get("/users/me", Some(&other_session.access)).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn logout_without_a_token_returns_401() {
    let app = spawn_app().await;
    problem(
        app.send(Method::POST, "/auth/logout", None, None).await,
        401,
    )
    .await;
    app.stop().await;
}
