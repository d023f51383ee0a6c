//! `DATABASE_READ_URL`. The real streaming replica (lag, read-your-writes across instances,
//! stale reads by others, fallback when it stops) is `deploy/postgres/check-replica.sh`, which
//! makes its own primary and replica; here: a replica URL that does not lead to a replica (the
//! primary itself, which is not in recovery) counts as down, and lists go to the primary; and
//! SQLite refuses the variable.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, base_config, body, str_of};

#[tokio::test]
async fn lists_go_to_the_primary_while_the_replica_is_not_one() {
    let db = TestDb::fresh().await;
    if !db.is_postgres() {
        // SQLite has no replica: the variable stops start-up, naming itself.
        let mut vars = base_config(db.url(), "replica-test");
        vars.insert(
            "DATABASE_READ_URL".into(),
            "postgres://app@127.0.0.1/replica".into(),
        );
        let refused = tasklight::config::Config::from_map(&vars).unwrap_err();
        assert_eq!(refused.variable, "DATABASE_READ_URL");
        return;
    }
    let url = db.url().to_owned();
    let app = TestApp::start(db, vec![("DATABASE_READ_URL".into(), url)]).await;
    let mut ready = Value::Null;
    for _ in 0..40 {
        let response = app.get("/health/ready", None).await;
        assert_eq!(
            response.status(),
            200,
            "a replica that is down keeps the instance ready"
        );
        ready = response.json().await.unwrap();
        if ready["checks"]["replica"]["status"] == "down" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready["checks"]["replica"]["status"], "down", "{ready}");
    assert_eq!(ready["status"], "degraded", "{ready}");

    let team = app.team().await;
    let created = body(
        app.post(
            &format!("/projects/{}/tasks", team.project_id),
            Some(&team.member.access),
            &json!({"title": "written and listed at once"}),
        )
        .await,
        201,
    )
    .await;
    for reader in [&team.member, &team.owner] {
        let page = body(
            app.get(
                &format!("/projects/{}/tasks", team.project_id),
                Some(&reader.access),
            )
            .await,
            200,
        )
        .await;
        let ids: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| str_of(t, "id"))
            .collect();
        assert!(ids.contains(&str_of(&created, "id")), "{page}");
    }
    let metrics = app.metrics().await;
    let down = crate::telemetry::process::sample(
        &metrics,
        "tasklight_db_reads_total{target=\"primary\",reason=\"down\"}",
    )
    .unwrap_or_else(|| panic!("no reads counted as down:\n{metrics}"));
    assert!(down >= 2.0, "{down}");
    assert_eq!(
        crate::telemetry::process::sample(&metrics, "tasklight_db_replica_up"),
        Some(0.0)
    );
    app.stop().await;
}
