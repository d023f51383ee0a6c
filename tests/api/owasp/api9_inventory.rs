//! API9:2023 Improper Inventory Management: the routes the server answers are exactly the
//! operations in its OpenAPI document, plus the documents and Swagger UI themselves. Every
//! documented method of every documented path reaches its operation; every other method on a
//! documented path is a 405; undocumented paths (old versions, debug or admin guesses, the admin
//! listener's routes on the public port) are a 404 from the router.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Served on the public listener but not API operations: the documents and Swagger UI.
const DOCUMENT_ROUTES: [&str; 3] = ["/api/v1/openapi.json", "/api/v1/openapi.yaml", "/docs"];

/// The router's own 404 (no route), as opposed to an operation's "resource not found".
async fn is_router_404(response: reqwest::Response) -> bool {
    if response.status() != 404 {
        return false;
    }
    let body: Value = response.json().await.unwrap_or_default();
    body["detail"] == "no route matches this path"
}

#[tokio::test]
async fn api9_every_route_answered_is_documented_and_every_documented_route_answers() {
    let app = spawn_app().await;
    let user = app.user().await;
    let spec = app.spec().await;
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    let mut checked = 0;
    for path in &paths {
        let concrete = super::with_unknown_ids(path);
        for method in METHODS {
            let response = app
                .req(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &concrete,
                    Some(&user.access),
                )
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if documented.contains(&(method.to_owned(), (*path).clone())) {
                assert_ne!(status, 405, "{method} {path} is documented but refused");
                assert!(
                    !is_router_404(response).await,
                    "{method} {path} is documented but has no route"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented but answered {status}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, paths.len() * METHODS.len());
    assert!(documented.len() >= 25, "{} operations", documented.len());

    for route in DOCUMENT_ROUTES {
        assert_eq!(app.get(route, None).await.status(), 200, "{route}");
    }
    for guess in [
        "/api/v2/tasks",
        "/api/v1",
        "/api/v2/tasks/mine",
        "/api/v1/admin",
        "/api/v1/debug",
        "/api/v1/internal/users",
        "/api/v1/users",
        "/metrics",
        "/admin",
        "/.env",
        "/api/v1/openapi.yml",
    ] {
        let response = app.get(guess, Some(&user.access)).await;
        assert!(is_router_404(response).await, "{guess} answered");
    }
    app.stop().await;
}
