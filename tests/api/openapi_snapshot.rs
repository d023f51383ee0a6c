//! The OpenAPI document is snapshot-tested, so every API change is a deliberate, reviewed diff
//! of `tests/snapshots/openapi.json`. After an intended change, refresh the snapshot with
//! `UPDATE_SNAPSHOTS=1 cargo test openapi_snapshot` and commit it.

use crate::helpers::spawn_app;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

#[tokio::test]
async fn the_openapi_document_matches_the_committed_snapshot() {
    let app = spawn_app().await;
    let spec = app.spec().await;
    app.stop().await;
    // serde_json's map is ordered by key, so the rendering is stable.
    let rendered = serde_json::to_string_pretty(&spec).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(std::path::Path::new(SNAPSHOT).parent().unwrap()).unwrap();
        std::fs::write(SNAPSHOT, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    if committed != rendered {
        let first_difference = committed
            .lines()
            .zip(rendered.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}:\n  snapshot: {a}\n  now:      {b}", i + 1))
            .unwrap_or_else(|| "one document is a prefix of the other".to_owned());
        panic!(
            "the OpenAPI document changed ({first_difference}).\nIf the change is intended, run \
             `UPDATE_SNAPSHOTS=1 cargo test openapi_snapshot` and commit tests/snapshots/openapi.json."
        );
    }
}

#[tokio::test]
async fn the_yaml_document_and_swagger_ui_show_the_same_finished_document() {
    let app = spawn_app().await;
    let json = app.spec().await;
    // The finishing step ran: the rate-limit fields are described once and referenced.
    assert!(json["components"]["headers"]["RateLimit"].is_object());
    let yaml = app
        .get("/api/v1/openapi.yaml", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        yaml.contains("#/components/headers/RateLimit"),
        "YAML not finished"
    );
    assert!(yaml.contains("adminBearerAuth"));
    let html = app.get("/docs", None).await.text().await.unwrap();
    assert!(
        html.contains("#/components/headers/RateLimit"),
        "Swagger UI not finished"
    );
    app.stop().await;
}
