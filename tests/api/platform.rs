//! Health, the OpenAPI documents and Swagger UI.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{body, header, read, spawn_app};

#[tokio::test]
async fn liveness_says_ok() {
    let app = spawn_app().await;
    assert_eq!(
        body(app.get("/health/live", None).await, 200).await,
        serde_json::json!({"status": "ok"})
    );
    app.stop().await;
}

#[tokio::test]
async fn readiness_reports_the_database_up_with_its_latency() {
    let app = spawn_app().await;
    let ready = body(app.get("/health/ready", None).await, 200).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"]["status"], "up");
    assert!(
        ready["checks"]["database"]["latency_ms"].is_number(),
        "{ready}"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_its_own_request_id() {
    let app = spawn_app().await;
    let first = header(&app.get("/health/live", None).await, "x-request-id");
    let second = header(&app.get("/health/live", None).await, "x-request-id");
    let api = header(&app.get("/users/me", None).await, "x-request-id");
    assert!(
        !first.is_empty() && first != second && second != api,
        "{first} {second} {api}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_json_document_describes_every_area_of_the_api() {
    let app = spawn_app().await;
    let spec: Value = body(app.get("/api/v1/openapi.json", None).await, 200).await;
    assert!(
        spec["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{}",
        spec["openapi"]
    );
    let paths: Vec<&String> = spec["paths"].as_object().expect("paths").keys().collect();
    for expected in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/users/me",
        "/admin/users",
        "/admin/users/{user_id}",
        "/projects",
        "/projects/{project_id}",
        "/projects/{project_id}/members",
        "/projects/{project_id}/members/{user_id}",
        "/projects/{project_id}/tasks",
        "/tasks/{task_id}",
        "/projects/{project_id}/audit",
        "/admin/audit",
    ] {
        assert!(
            paths.iter().any(|p| p.ends_with(expected)),
            "{expected} missing from {paths:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_yaml_document_is_served() {
    let app = spawn_app().await;
    let resp = app.get("/api/v1/openapi.yaml", None).await;
    let content_type = header(&resp, "content-type");
    let (status, _, text) = read(resp).await;
    assert_eq!(status, 200);
    assert!(content_type.contains("yaml"), "{content_type}");
    assert!(
        text.contains("openapi:") && text.contains("/tasks/{task_id}"),
        "{}",
        &text[..text.len().min(300)]
    );
    app.stop().await;
}

#[tokio::test]
async fn swagger_ui_is_served_as_html() {
    let app = spawn_app().await;
    let resp = app.get("/docs", None).await;
    assert!(header(&resp, "content-type").starts_with("text/html"));
    assert!(
        resp.headers().get("content-encoding").is_none(),
        "compressed without Accept-Encoding"
    );
    let (status, _, text) = read(resp).await;
    assert_eq!(status, 200);
    assert!(
        text.to_lowercase().contains("swagger"),
        "{}",
        &text[..text.len().min(300)]
    );
    app.stop().await;
}

#[tokio::test]
async fn swagger_ui_is_gzip_compressed_when_the_client_accepts_gzip() {
    let app = spawn_app().await;
    let plain = app.get("/docs", None).await.bytes().await.unwrap();
    let resp = app
        .req(Method::GET, "/docs", None)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-encoding"), "gzip");
    let compressed = resp.bytes().await.unwrap();
    assert_eq!(&compressed[..2], &[0x1f, 0x8b], "not a gzip stream");
    assert!(
        compressed.len() * 2 < plain.len(),
        "{} bytes gzip vs {} plain",
        compressed.len(),
        plain.len()
    );
    app.stop().await;
}
