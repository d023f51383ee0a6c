//! `tasklight migrate` run by several instances at once on one fresh database (as pods of a
//! rollout starting together do): every run succeeds and each migration is applied once.

use crate::helpers::{JWT_SECRET, TestDb, tasklight_command};

/// Migrations shipped for each dialect (the same count).
fn migration_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count()
}

#[tokio::test]
async fn several_migrate_commands_at_once_apply_each_migration_once() {
    let db = TestDb::fresh().await;
    let runs: Vec<_> = (0..4)
        .map(|i| {
            tasklight_command(db.url(), &["migrate"])
                .env("INSTANCE_ID", format!("migrate-{i}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("tasklight migrate starts")
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a concurrent migrate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Each version once, every one successful.
    let config =
        tasklight::config::Config::from_map(&crate::helpers::base_config(db.url(), "check"))
            .unwrap();
    let pool = tasklight::db::connect(
        &config,
        std::sync::Arc::new(tasklight::telemetry::metrics::Metrics::new("check")),
    )
    .await
    .unwrap();
    let sql = "SELECT COUNT(*), COUNT(DISTINCT version), SUM(CASE WHEN success THEN 1 ELSE 0 END) FROM _sqlx_migrations";
    let (rows, versions, succeeded): (i64, i64, i64) = crate::helpers::on_db!(pool, |c| {
        sqlx::query_as(sql).fetch_one(c.db()).await.unwrap()
    });
    let expected = migration_count() as i64;
    assert_eq!((rows, versions, succeeded), (expected, expected, expected));
    pool.close().await;
    db.cleanup().await;
}

/// During a rolling update the previous release keeps running beside the next one, and may
/// restart, after the next one applied its expand migration: the previous release's `migrate`
/// (and `serve`, which migrates first) must accept a database with a migration it does not know.
#[tokio::test]
async fn a_migration_a_newer_release_applied_does_not_stop_this_release() {
    let db = TestDb::fresh().await;
    let migrate = || tasklight_command(db.url(), &["migrate"]).output().unwrap();
    assert!(migrate().status.success());
    db.execute(if db.is_postgres() {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990, 'an expand step of a newer release', true, '\\x00'::bytea, 1)"
    } else {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990, 'an expand step of a newer release', 1, X'00', 1)"
    })
    .await;
    let again = migrate();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let process = crate::telemetry::process::Process::start(&[
        ("DATABASE_URL", db.url()),
        ("JWT_SECRET", JWT_SECRET),
    ])
    .await;
    let health = process
        .client
        .get(format!("{}/health/ready", process.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    process.stop();
    db.cleanup().await;
}
