//! Rate limits on one instance (in-process, no Redis): quotas per address, per user and per
//! account, the 429 problem with `Retry-After`, the `RateLimit-Policy` and `RateLimit` fields,
//! `X-Forwarded-For` believed only from trusted proxies, and the decision metric. The
//! cluster-wide (Redis) behaviour is in `cluster.rs`.

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app_with, unique_email};

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

fn sample(metrics: &str, series: &str) -> f64 {
    crate::telemetry::process::sample(metrics, series).unwrap_or(0.0)
}

#[tokio::test]
async fn anonymous_requests_over_the_address_quota_get_a_429_problem_with_retry_after() {
    let app = spawn_app_with(&[("TASKLIGHT_RATE_LIMIT_IP", "3/60s,burst=3")]).await;
    for remaining in [2, 1, 0] {
        let response = app.get("/users/me", None).await;
        assert_eq!(response.status(), 401);
        assert_eq!(header(&response, "ratelimit-policy"), "\"ip\";q=3;w=60");
        let limit = header(&response, "ratelimit");
        assert!(
            limit.starts_with(&format!("\"ip\";r={remaining};t=")),
            "{limit}"
        );
    }
    let refused = app.get("/users/me", None).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "content-type"), "application/problem+json");
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    // One request per 20 s is the steady rate of 3 per minute.
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert!(header(&refused, "ratelimit").starts_with("\"ip\";r=0;t="));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["status"], 429);
    assert_eq!(body["type"], "urn:tasklight:problem:rate-limited");
    assert!(body["detail"].as_str().unwrap().contains("`ip`"));
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // Health, the documents and Swagger UI are not limited.
    for path in ["/health/live", "/api/v1/openapi.json"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().get("ratelimit").is_none(), "{path}");
    }
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "tasklight_rate_limit_decisions_total{policy=\"ip\",result=\"allowed\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &metrics,
            "tasklight_rate_limit_decisions_total{policy=\"ip\",result=\"limited\"}"
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn authenticated_requests_are_counted_per_user_not_per_address() {
    let app = spawn_app_with(&[("TASKLIGHT_RATE_LIMIT_USER", "3/60s,burst=3")]).await;
    let alice = app.user().await;
    let bob = app.user().await;
    for _ in 0..3 {
        let response = app.get("/users/me", Some(&alice.access)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-policy"), "\"user\";q=3;w=60");
    }
    assert_eq!(
        app.get("/users/me", Some(&alice.access)).await.status(),
        429
    );
    // Bob, from the same address, has his own quota.
    assert_eq!(app.get("/users/me", Some(&bob.access)).await.status(), 200);
    // A token that does not verify is not a user: it counts against the address.
    let forged = app.get("/users/me", Some("not.a.token")).await;
    assert_eq!(forged.status(), 401);
    assert_eq!(header(&forged, "ratelimit-policy"), "\"ip\";q=1000000;w=1");
    app.stop().await;
}

#[tokio::test]
async fn login_is_limited_per_account_before_the_password_is_checked() {
    let app = spawn_app_with(&[("TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT", "3/60s,burst=3")]).await;
    let victim = app.user().await; // one registration and one login: two of the three
    let wrong = app.login_response(&victim.email, "wrong password!").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        header(&wrong, "ratelimit-policy"),
        "\"auth-ip\";q=1000000;w=1, \"auth-account\";q=3;w=60"
    );
    assert!(header(&wrong, "ratelimit").contains("\"auth-account\";r=0;"));
    // Even the right password is refused now, without being checked.
    let refused = app.login_response(&victim.email, PASSWORD).await;
    assert_eq!(refused.status(), 429);
    assert!(header(&refused, "retry-after").parse::<u64>().unwrap() >= 1);
    let body: Value = refused.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("auth-account"));
    // Case and spacing do not make a new account.
    let upper = app
        .login_response(&victim.email.to_uppercase(), PASSWORD)
        .await;
    assert_eq!(upper.status(), 429);
    // Other accounts are unaffected.
    let other = app.user().await;
    assert_eq!(
        app.get("/users/me", Some(&other.access)).await.status(),
        200
    );
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "tasklight_rate_limit_decisions_total{policy=\"auth-account\",result=\"limited\"}"
        ),
        2.0
    );
    app.stop().await;
}

#[tokio::test]
async fn register_and_refresh_share_the_stricter_per_address_policy() {
    let app = spawn_app_with(&[("TASKLIGHT_RATE_LIMIT_AUTH_IP", "2/60s,burst=2")]).await;
    let register = |email: String| {
        let app = &app;
        async move {
            app.post(
                "/auth/register",
                None,
                &json!({"email": email, "password": PASSWORD, "display_name": "R"}),
            )
            .await
        }
    };
    assert_eq!(register(unique_email()).await.status(), 201);
    let second = app.refresh("not-a-refresh-token").await;
    assert_eq!(second.status(), 401);
    assert_eq!(header(&second, "ratelimit-policy"), "\"auth-ip\";q=2;w=60");
    assert_eq!(register(unique_email()).await.status(), 429);
    // Ordinary routes keep their own, looser policy.
    assert_eq!(app.get("/users/me", None).await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let quota = ("TASKLIGHT_RATE_LIMIT_IP", "1/60s,burst=1");
    let send = |app: &crate::helpers::TestApp, forwarded: &'static str| {
        app.req(reqwest::Method::GET, "/users/me", None)
            .header("x-forwarded-for", forwarded)
            .send()
    };

    // Untrusted peer: the header is ignored, so both requests count against 127.0.0.1.
    let app = spawn_app_with(&[quota]).await;
    assert_eq!(send(&app, "198.51.100.1").await.unwrap().status(), 401);
    assert_eq!(send(&app, "198.51.100.2").await.unwrap().status(), 429);
    app.stop().await;

    // Trusted peer: each forwarded client has its own quota, and a spoofed left-most entry
    // does not help the second client.
    let app = spawn_app_with(&[quota, ("TASKLIGHT_TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert_eq!(send(&app, "198.51.100.1").await.unwrap().status(), 401);
    assert_eq!(send(&app, "198.51.100.2").await.unwrap().status(), 401);
    assert_eq!(
        send(&app, "203.0.113.50, 198.51.100.2")
            .await
            .unwrap()
            .status(),
        429
    );
    app.stop().await;
}

#[tokio::test]
async fn the_429_and_its_headers_are_documented_on_every_limited_operation() {
    let app = spawn_app_with(&[]).await;
    let spec = app.spec().await;
    let mut limited = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let too_many = &operation["responses"]["429"];
            if path.starts_with("/health/") {
                assert!(too_many.is_null(), "{method} {path} is not limited");
                continue;
            }
            limited += 1;
            for name in ["Retry-After", "RateLimit-Policy", "RateLimit"] {
                assert!(
                    too_many["headers"][name].is_object(),
                    "{method} {path}: 429 lacks {name}"
                );
            }
        }
    }
    assert!(limited >= 20, "{limited}");
    app.stop().await;
}
