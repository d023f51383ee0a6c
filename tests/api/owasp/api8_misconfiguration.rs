//! API8:2023 Security Misconfiguration: security headers on every response (every documented
//! operation, errors, the documents and Swagger UI), HSTS when configured, CORS only for the
//! configured origins (none by default), and no stack trace, SQL or internal detail in an error.

use reqwest::Method;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn assert_security_headers(what: &str, response: &reqwest::Response) {
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    let frame_ancestors = headers
        .get("content-security-policy")
        .is_some_and(|csp| csp.to_str().unwrap().contains("frame-ancestors 'none'"));
    assert!(
        frame_ancestors || headers.get("x-frame-options").is_some_and(|v| v == "DENY"),
        "{what}: framing allowed"
    );
    assert!(headers.contains_key("referrer-policy"), "{what}");
    assert!(!headers.contains_key("server"), "{what}: Server header");
}

/// Every documented operation with well-formed but unknown ids, as (method, path).
async fn operations(app: &TestApp) -> Vec<(Method, String)> {
    let spec = app.spec().await;
    let mut all = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete = super::with_unknown_ids(path);
        for method in item.as_object().unwrap().keys() {
            all.push((
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                concrete.clone(),
            ));
        }
    }
    all
}

#[tokio::test]
async fn api8_every_response_carries_the_security_headers() {
    let app = spawn_app_with(&[("TASKLIGHT_HSTS_MAX_AGE_SECS", "31536000")]).await;
    let user = app.user().await;
    let mut requests = operations(&app).await;
    requests.extend([
        (Method::GET, "/docs".to_owned()),
        (Method::GET, "/api/v1/openapi.yaml".to_owned()),
        (Method::GET, "/api/v1/nothing-here".to_owned()),
        (Method::TRACE, "/api/v1/users/me".to_owned()),
    ]);
    for (method, path) in &requests {
        let response = app
            .req(method.clone(), path, Some(&user.access))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let what = format!("{method} {path} ({})", response.status());
        assert_security_headers(&what, &response);
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{what}"
        );
    }
    assert!(requests.len() >= 29);
    app.stop().await;

    // Without the setting (plain HTTP behind no TLS), no HSTS.
    let app = spawn_app().await;
    let response = app.get("/health/live", None).await;
    assert_security_headers("health", &response);
    assert!(!response.headers().contains_key("strict-transport-security"));
    app.stop().await;
}

#[tokio::test]
async fn api8_cors_answers_only_the_configured_origins() {
    let preflight = |app: &TestApp, origin: &str| {
        app.req(Method::OPTIONS, "/users/me", None)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    // Default: no origin is allowed; no CORS header is ever sent.
    let app = spawn_app().await;
    let response = preflight(&app, "https://evil.example").await.unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let simple = app
        .req(Method::GET, "/health/live", None)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!simple.headers().contains_key("access-control-allow-origin"));
    app.stop().await;

    let app = spawn_app_with(&[(
        "TASKLIGHT_CORS_ALLOWED_ORIGINS",
        "https://app.example.com, http://localhost:5173",
    )])
    .await;
    let allowed = preflight(&app, "https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("PATCH"), "{methods}");
    let refused = preflight(&app, "https://evil.example").await.unwrap();
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let user = app.user().await;
    let actual = app
        .req(Method::GET, "/users/me", Some(&user.access))
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), 200);
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = actual.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in ["etag", "x-request-id", "ratelimit"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    app.stop().await;
}

#[tokio::test]
async fn api8_errors_carry_no_stack_trace_sql_or_internals() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut bodies = Vec::new();
    for (method, path) in operations(&app).await {
        for body in [
            "{".to_owned(),
            "[]".to_owned(),
            r#"{"title": 5, "name": ["x"], "tags": "x' OR 1=1 --", "email": "\u0000"}"#.to_owned(),
        ] {
            let response = app
                .req(method.clone(), &path, Some(&user.access))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            if !response.status().is_success() {
                bodies.push(format!(
                    "{method} {path}: {}",
                    response.text().await.unwrap()
                ));
            }
        }
    }
    assert!(bodies.len() > 40, "{}", bodies.len());
    for body in &bodies {
        let lower = body.to_ascii_lowercase();
        for leak in [
            "select ",
            "insert ",
            "sqlx",
            "sqlite",
            "postgres",
            "panicked",
            "backtrace",
            "src/",
            ".rs:",
            "thread '",
            "stack",
        ] {
            assert!(!lower.contains(leak), "`{leak}` in {body}");
        }
    }
    app.stop().await;
}
