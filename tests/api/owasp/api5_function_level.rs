//! API5:2023 Broken Function Level Authorization: every administrative operation in the
//! document (found by path, so a new one is covered the day it is added) refuses a normal user
//! with 403 and an anonymous caller with 401, and does nothing for them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn api5_every_admin_operation_refuses_users_and_anonymous_callers() {
    let app = spawn_app().await;
    let user = app.user().await;
    let victim = app.user().await;
    let spec = app.spec().await;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/admin/") {
            continue;
        }
        let concrete = path.replace("{user_id}", &victim.id);
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = json!({"role": "admin", "disabled": true});
            for (token, expected) in [(Some(user.access.as_str()), 403), (None, 401)] {
                let response = app
                    .send(method.clone(), &concrete, token, Some(&body))
                    .await;
                assert_eq!(response.status(), expected, "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} admin operations found");
    // The victim is neither promoted nor disabled.
    let me: Value = app
        .get("/users/me", Some(&victim.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");
    app.stop().await;
}
