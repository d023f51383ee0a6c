//! `/metrics` on the admin listener: route templates only, exact counts, and the span-drop
//! counter when the collector is unreachable.

use std::time::{Duration, Instant};

use super::process::{Process, sample, wait_for};

fn task_histogram(status: u16) -> String {
    format!(
        "http_server_request_duration_seconds_count{{method=\"GET\",route=\"/api/v1/tasks/{{task_id}}\",status_code=\"{status}\"}}"
    )
}

#[tokio::test]
async fn metrics_use_route_templates_and_move_by_exactly_the_requests_sent() {
    let app = Process::start(&[]).await;
    let (access, _) = app
        .user("metrics@example.com", "correct horse battery")
        .await;
    let before = app.metrics().await;
    let ids: Vec<String> = (0..7).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &ids {
        let r = app
            .client
            .get(format!("{}/api/v1/tasks/{id}", app.base))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    for id in ids.iter().take(3) {
        let r = app
            .client
            .get(format!("{}/no/such/{id}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let project: serde_json::Value = app
        .client
        .post(format!("{}/api/v1/projects", app.base))
        .bearer_auth(&access)
        .json(&serde_json::json!({"name": "m"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for title in ["a", "b"] {
        let r = app
            .client
            .post(format!(
                "{}/api/v1/projects/{}/tasks",
                app.base,
                project["id"].as_str().unwrap()
            ))
            .bearer_auth(&access)
            .json(&serde_json::json!({"title": title}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let failed_login = app
        .client
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&serde_json::json!({"email": "metrics@example.com", "password": "wrong password!!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed_login.status(), 401);

    let after = app.metrics().await;
    let delta = |series: &str| {
        sample(&after, series).unwrap_or(0.0) - sample(&before, series).unwrap_or(0.0)
    };
    assert_eq!(delta(&task_histogram(404)), 7.0);
    assert_eq!(
        delta(
            "http_server_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status_code=\"404\"}"
        ),
        3.0
    );
    assert_eq!(
        delta("tasklight_task_changes_total{change=\"created\"}"),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            "tasklight_auth_events_total{event=\"login_success\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "tasklight_auth_events_total{event=\"login_failure\"}"
        ),
        Some(1.0)
    );
    for id in &ids {
        assert!(
            !after.contains(id.as_str()),
            "a raw id leaked into /metrics"
        );
    }
    assert!(!after.contains("metrics@example.com"));
    assert!(!after.contains("/no/such"));
    assert!(after.contains(&format!(
        "tasklight_build_info{{version=\"{}\",instance_id=\"proc-instance\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(
        after.contains("le=\"0.005\"") && after.contains("le=\"10\""),
        "OpenTelemetry buckets"
    );
    assert!(sample(&after, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&after, "process_open_fds").unwrap() > 3.0);
    assert!(sample(&after, "process_start_time_seconds").unwrap() > 1.6e9);
    assert!(sample(&after, "db_client_connections_max").unwrap() >= 1.0);
    assert!(after.contains("db_client_operation_duration_seconds_count{operation=\"INSERT\"}"));
    assert_eq!(sample(&after, "http_server_active_requests"), Some(0.0));
}

#[tokio::test]
async fn an_unreachable_collector_neither_slows_requests_nor_floods_the_log() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{closed_port}");
    let app = Process::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]).await;
    for _ in 0..30 {
        let started = Instant::now();
        let r = app
            .client
            .get(format!("{}/health/live", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // The export timeout is 5 s; a request that waited on the exporter would take that long.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a request waited {:?}",
            started.elapsed()
        );
    }
    let dropped = wait_for(Duration::from_secs(20), || async {
        sample(
            &app.metrics().await,
            "tasklight_telemetry_dropped_total{signal=\"spans\"}",
        )
        .unwrap_or(0.0)
            >= 30.0
    })
    .await;
    assert!(
        dropped,
        "span drops were not counted:\n{}",
        app.metrics().await
    );
    let warnings = || {
        app.log()
            .iter()
            .filter(|l| l.contains("span export is failing"))
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(5), || async { warnings() >= 1 }).await,
        "the failing export was never logged"
    );
    // A second round of failed exports must not log again.
    let dropped_so_far = sample(
        &app.metrics().await,
        "tasklight_telemetry_dropped_total{signal=\"spans\"}",
    )
    .unwrap_or(0.0);
    for _ in 0..30 {
        let r = app
            .client
            .get(format!("{}/health/live", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let dropped_again = wait_for(Duration::from_secs(20), || async {
        sample(
            &app.metrics().await,
            "tasklight_telemetry_dropped_total{signal=\"spans\"}",
        )
        .unwrap_or(0.0)
            >= dropped_so_far + 30.0
    })
    .await;
    assert!(dropped_again, "the second round of drops was not counted");
    // Lines reach stdout within the sink's 20 ms tick; give them ten ticks.
    let logged_again = wait_for(Duration::from_millis(200), || async { warnings() > 1 }).await;
    assert!(!logged_again, "the failure is logged once, not per export");
    assert_eq!(warnings(), 1);
}
