//! API2:2023 Broken Authentication: every way of presenting a token the service did not issue,
//! or one it issued for another purpose, or one that no longer stands, is a 401; a token is only
//! ever read from the `Authorization` header; and guessing a password hits the stricter
//! per-account limit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, spawn_app, spawn_app_with};

/// The claims of a real access token, to alter one at a time.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get("/users/me", Some(token)).await.status().as_u16()
}

#[tokio::test]
async fn api2_forged_altered_expired_and_misaddressed_tokens_are_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let claims = claims_of(&user.access);
    // The control: the same claims, signed with the right key, are accepted.
    assert_eq!(
        me_status(&app, &sign(&claims, JWT_SECRET.as_bytes())).await,
        200
    );

    // alg: none, with and without a trailing dot.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    for unsigned in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_eq!(me_status(&app, &unsigned).await, 401, "alg none");
    }
    // Another algorithm's header over the real signature.
    let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
    let signature = user.access.split('.').nth(2).unwrap();
    assert_eq!(
        me_status(&app, &format!("{hs512}.{payload}.{signature}")).await,
        401
    );
    // Signed with another key.
    let other_key = b"another-secret-another-secret-0123456789abcdef";
    assert_eq!(
        me_status(&app, &sign(&claims, other_key)).await,
        401,
        "other key"
    );

    let now = chrono::Utc::now().timestamp();
    let altered = |field: &str, value: Value| {
        let mut changed = claims.clone();
        changed[field] = value;
        sign(&changed, JWT_SECRET.as_bytes())
    };
    for (what, token) in [
        ("expired", altered("exp", json!(now - 3600))),
        ("issued in the future", altered("iat", json!(now + 3600))),
        ("wrong audience", altered("aud", json!("another-api"))),
        ("wrong issuer", altered("iss", json!("someone-else"))),
        (
            "unknown session",
            altered("sid", json!(uuid::Uuid::now_v7())),
        ),
    ] {
        assert_eq!(me_status(&app, &token).await, 401, "{what}");
    }
    // The payload changed (another user) under the original signature.
    let mut other = claims.clone();
    other["sub"] = json!(uuid::Uuid::now_v7());
    let tampered = format!(
        "{}.{}.{signature}",
        user.access.split('.').next().unwrap(),
        URL_SAFE_NO_PAD.encode(other.to_string())
    );
    assert_eq!(me_status(&app, &tampered).await, 401, "tampered payload");
    app.stop().await;
}

#[tokio::test]
async fn api2_tokens_are_read_from_the_authorization_header_only() {
    let app = spawn_app().await;
    let user = app.user().await;
    for query in ["access_token", "token", "bearer", "authorization", "jwt"] {
        let path = format!("/users/me?{query}={}", user.access);
        assert_eq!(app.get(&path, None).await.status(), 401, "?{query}=");
    }
    let cookie = app
        .req(reqwest::Method::GET, "/users/me", None)
        .header("Cookie", format!("access_token={}", user.access))
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.status(), 401, "cookie");
    app.stop().await;
}

#[tokio::test]
async fn api2_refresh_and_access_tokens_cannot_stand_in_for_each_other() {
    let app = spawn_app().await;
    let user = app.user().await;
    assert_eq!(
        me_status(&app, &user.refresh).await,
        401,
        "refresh as access"
    );
    // An access token is not even shaped like a refresh token (a 400 naming the field).
    let refreshed = app.refresh(&user.access).await;
    assert_eq!(refreshed.status(), 400, "access as refresh");
    let problem: Value = refreshed.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "refresh_token", "{problem}");
    // Both still work for what they are.
    assert_eq!(me_status(&app, &user.access).await, 200);
    assert_eq!(app.refresh(&user.refresh).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn api2_a_disabled_users_tokens_stop_working_at_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app.user().await;
    assert_eq!(me_status(&app, &user.access).await, 200);
    let disabled = app
        .patch(
            &format!("/admin/users/{}", user.id),
            Some(&admin.access),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(me_status(&app, &user.access).await, 401);
    assert_eq!(app.refresh(&user.refresh).await.status(), 401);
    assert_eq!(
        app.login_response(&user.email, PASSWORD).await.status(),
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn api2_guessing_a_password_hits_the_per_account_limit() {
    let app = spawn_app_with(&[("TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT", "5/60s,burst=5")]).await;
    let email = crate::helpers::unique_email();
    assert_eq!(app.register(&email, PASSWORD, "Victim").await.status(), 201);
    let mut statuses = Vec::new();
    for guess in 0..10 {
        let response = app
            .login_response(&email, &format!("guess number {guess:04}"))
            .await;
        statuses.push(response.status().as_u16());
    }
    // One registration and four guesses fit in the burst of five; the rest are refused
    // before any password is checked, and so is the right one.
    assert_eq!(statuses[..4], [401; 4], "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(app.login_response(&email, PASSWORD).await.status(), 429);
    app.stop().await;
}
