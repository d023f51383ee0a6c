//! HTTP caching headers across routes: `private, no-cache` on reads (304 included), `no-store`
//! on tokens, writes, errors and health, `public, max-age=300` on the documents; `Vary` names
//! `Authorization` on the API and `Accept-Encoding` everywhere, after CORS's `Origin`.

use reqwest::{Method, Response};
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with, unique_email};

fn cache_control(response: &Response) -> String {
    header(response, "cache-control")
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} on {} {}", response.status(), response.url()))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn reads_are_private_and_revalidated_with_the_etag_and_the_304_says_the_same() {
    let app = spawn_app().await;
    let team = app.team().await;
    let token = Some(team.member.access.as_str());
    let task_path = format!("/tasks/{}", team.task_id);
    let read = app.get(&task_path, token).await;
    assert_eq!(read.status(), 200);
    assert_eq!(cache_control(&read), "private, no-cache");
    assert_eq!(header(&read, "vary"), "Authorization, Accept-Encoding");
    let etag = header(&read, "etag");
    let again = app
        .req(Method::GET, &task_path, token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(cache_control(&again), "private, no-cache");
    assert_eq!(header(&again, "vary"), "Authorization, Accept-Encoding");
    assert_eq!(header(&again, "etag"), etag);
    for path in [
        "/projects".to_owned(),
        format!("/projects/{}", team.project_id),
        format!("/projects/{}/tasks", team.project_id),
        format!("/projects/{}/members", team.project_id),
        "/users/me".to_owned(),
    ] {
        let response = app.get(&path, token).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(cache_control(&response), "private, no-cache", "{path}");
        assert_eq!(
            header(&response, "vary"),
            "Authorization, Accept-Encoding",
            "{path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn token_answers_writes_and_errors_are_never_stored() {
    let app = spawn_app().await;
    let email = unique_email();
    let registered = app.register(&email, PASSWORD, "Cache Test").await;
    assert_eq!(registered.status(), 201);
    assert_eq!(cache_control(&registered), "no-store");
    let login = app.login_response(&email, PASSWORD).await;
    assert_eq!(login.status(), 200);
    assert_eq!(cache_control(&login), "no-store");
    let tokens: serde_json::Value = login.json().await.unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refreshed = app.refresh(refresh_token).await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(cache_control(&refreshed), "no-store");
    let access: serde_json::Value = refreshed.json().await.unwrap();
    let access = access["access_token"].as_str().unwrap().to_owned();
    let wrong = app.login_response(&email, "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(cache_control(&wrong), "no-store");

    let created = app
        .post("/projects", Some(&access), &json!({"name": "Cached"}))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(cache_control(&created), "no-store");
    let project: serde_json::Value = created.json().await.unwrap();
    let project_path = format!("/projects/{}", project["id"].as_str().unwrap());
    let changed = app
        .patch(&project_path, Some(&access), &json!({"name": "Renamed"}))
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(cache_control(&changed), "no-store");
    for (response, status) in [
        (app.get(&project_path, None).await, 401),
        (
            app.get(
                "/projects/00000000-0000-7000-8000-000000000000",
                Some(&access),
            )
            .await,
            404,
        ),
        (app.get("/projects?limit=0", Some(&access)).await, 400),
        (app.get("/no/such/route", None).await, 404),
    ] {
        assert_eq!(response.status(), status, "{}", response.url());
        assert_eq!(cache_control(&response), "no-store", "{}", response.url());
    }
    let deleted = app.delete(&project_path, Some(&access)).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(cache_control(&deleted), "no-store");
    let logout = app.post("/auth/logout", Some(&access), &json!({})).await;
    assert_eq!(logout.status(), 204);
    assert_eq!(cache_control(&logout), "no-store");
    app.stop().await;
}

#[tokio::test]
async fn health_is_never_stored_and_the_documents_are_public_for_five_minutes() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(cache_control(&response), "no-store", "{path}");
        assert_eq!(header(&response, "vary"), "Accept-Encoding", "{path}");
    }
    for path in ["/api/v1/openapi.json", "/api/v1/openapi.yaml", "/docs"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(cache_control(&response), "public, max-age=300", "{path}");
        assert_eq!(header(&response, "vary"), "Accept-Encoding", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn with_cors_the_vary_header_keeps_origin_and_adds_the_callers_headers() {
    let app =
        spawn_app_with(&[("TASKLIGHT_CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let user = app.user().await;
    let response = app
        .req(Method::GET, "/users/me", Some(&user.access))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(
        header(&response, "vary"),
        "Origin, Authorization, Accept-Encoding"
    );
    assert_eq!(cache_control(&response), "private, no-cache");
    app.stop().await;
}
