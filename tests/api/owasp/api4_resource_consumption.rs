//! API4:2023 Unrestricted Resource Consumption: a request that takes too long is cut off with a
//! 503 (and the server keeps serving); page sizes, tag lists and string fields have limits that
//! are enforced with a 400 naming the field; bodies over the limit are a 413; header sections
//! over the limit are a 431 naming the largest header, and request targets over the limit a 414.
//! Rate limits: `ratelimit.rs` and API2's password guessing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{base_config, spawn_app, spawn_app_with};

async fn field_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn api4_a_request_over_the_time_limit_is_cut_off_with_a_503() {
    // The user registers and logs in on a server with the default limit (Argon2id alone may
    // take longer than 300 ms on a loaded machine); the request under test goes to a second
    // server on the same database whose limit is 300 ms.
    let app = spawn_app().await;
    let user = app.user().await;
    let mut vars = base_config(app.db.url(), "test-instance-timeout");
    vars.insert("TASKLIGHT_REQUEST_TIMEOUT_MS".into(), "300".into());
    let config = tasklight::config::Config::from_map(&vars).expect("configuration");
    let strict = tasklight::server::start(config)
        .await
        .expect("server starts");
    // A body that never finishes arriving keeps the handler waiting.
    let mut slow = tokio::net::TcpStream::connect(strict.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/projects HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        strict.addr, user.access
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer))
        .await
        .expect("answered before the client gave up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );
    assert!(answer.contains("urn:tasklight:problem:timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Nothing was created, and the server answers the next request normally.
    let list: Value = app
        .client
        .get(format!("http://{}/api/v1/projects", strict.addr))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    strict.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn api4_page_sizes_lists_and_strings_have_enforced_limits() {
    let app = spawn_app().await;
    let team = app.team().await;
    let owner = Some(team.owner.access.as_str());
    assert_eq!(app.get("/projects?limit=100", owner).await.status(), 200);
    for path in [
        "/projects?limit=101".to_owned(),
        "/projects?limit=1000000".to_owned(),
        format!("/projects/{}/tasks?limit=101", team.project_id),
        "/admin/users?limit=0".to_owned(),
    ] {
        let (status, field) = field_of(app.get(&path, owner).await).await;
        assert!(
            status == 400 && field == "limit" || status == 403,
            "{path}: {status} {field}"
        );
    }
    let tasks = format!("/projects/{}/tasks", team.project_id);
    let many_tags: Vec<String> = (0..1000).map(|i| format!("tag-{i}")).collect();
    for (body, expected_field) in [
        (json!({"title": "T", "tags": many_tags}), "tags"),
        (
            json!({"title": "T", "tags": ["x".repeat(100_000)]}),
            "tags[0]",
        ),
        (json!({"title": "t".repeat(100_000)}), "title"),
        (
            json!({"title": "T", "description": "d".repeat(200_000)}),
            "description",
        ),
    ] {
        let (status, field) = field_of(app.post(&tasks, owner, &body).await).await;
        assert_eq!((status, field.as_str()), (400, expected_field));
    }
    let huge = json!({"title": "T", "description": "d".repeat(2 * 1024 * 1024)});
    assert_eq!(app.post(&tasks, owner, &huge).await.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn api4_a_request_with_too_many_headers_is_refused_with_431() {
    let app = spawn_app().await;
    let send = |count: usize| async move {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let headers: String = (0..count).map(|i| format!("X-Header-{i}: v\r\n")).collect();
        let request = format!(
            "GET /health/live HTTP/1.1\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n",
            app.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("answered")
            .unwrap();
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(send(50).await, "HTTP/1.1 200 OK");
    assert!(send(200).await.starts_with("HTTP/1.1 431"));
    // The server keeps serving.
    assert_eq!(app.get("/health/live", None).await.status(), 200);
    app.stop().await;
}

/// The status, the problem type and the first named field of a refused request head.
async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    assert_eq!(
        response.headers()["x-content-type-options"],
        "nosniff",
        "security headers on the refusal too"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let kind = body["type"].as_str().unwrap_or_default().to_owned();
    let field = body["errors"][0]["field"].as_str().unwrap_or_default();
    (status, kind, field.to_owned())
}

#[tokio::test]
async fn api4_headers_and_targets_over_the_limits_are_refused_naming_the_culprit() {
    let app = spawn_app().await;
    let user = app.user().await;
    let me = app.url("/users/me");
    let get_with = |name: &'static str, value: String| {
        app.client
            .get(&me)
            .bearer_auth(&user.access)
            .header(name, value)
            .send()
    };
    // 16 KiB by default, all headers together: 15,000 bytes of padding fit, 17,000 do not.
    assert_eq!(
        get_with("x-padding", "p".repeat(15_000))
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, kind, field) =
        refusal(get_with("x-padding", "p".repeat(17_000)).await.unwrap()).await;
    assert_eq!(
        (status, kind.as_str(), field.as_str()),
        (431, "urn:tasklight:problem:headers-too-large", "x-padding")
    );
    // The total counts, not only the largest line: 40 headers of 500 bytes.
    let mut many = app.client.get(&me).bearer_auth(&user.access);
    for i in 0..40 {
        many = many.header(format!("x-pad-{i}"), "p".repeat(500));
    }
    let (status, _, field) = refusal(many.send().await.unwrap()).await;
    assert_eq!(status, 431);
    assert!(field.starts_with("x-pad-"), "{field}");
    // A credential that is too large is named, and its value is not repeated back.
    let secret = "s3cr3t-".repeat(3_000);
    let response = app
        .client
        .get(&me)
        .header("authorization", format!("Bearer {secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let body = response.text().await.unwrap();
    assert!(body.contains("\"field\":\"authorization\""), "{body}");
    assert!(!body.contains("s3cr3t"), "{body}");
    // The request target: 8 KiB by default.
    let target = |pad: usize| {
        app.client
            .get(app.url(&format!("/projects?limit=5&pad={}", "q".repeat(pad))))
            .bearer_auth(&user.access)
            .send()
    };
    assert_eq!(target(7_000).await.unwrap().status(), 200);
    let (status, kind, field) = refusal(target(9_000).await.unwrap()).await;
    assert_eq!(
        (status, kind.as_str(), field.as_str()),
        (414, "urn:tasklight:problem:uri-too-long", "uri")
    );
    // Probes are exempt.
    let probe = app
        .client
        .get(app.url("/health/live"))
        .header("x-padding", "p".repeat(17_000))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn api4_the_header_limit_comes_from_configuration() {
    let app = spawn_app_with(&[("TASKLIGHT_MAX_HEADER_BYTES", "2048")]).await;
    let user = app.user().await;
    let send = |pad: usize| {
        app.client
            .get(app.url("/users/me"))
            .bearer_auth(&user.access)
            .header("x-padding", "p".repeat(pad))
            .send()
    };
    assert_eq!(send(1_000).await.unwrap().status(), 200);
    let (status, _, field) = refusal(send(3_000).await.unwrap()).await;
    assert_eq!((status, field.as_str()), (431, "x-padding"));
    app.stop().await;
}
