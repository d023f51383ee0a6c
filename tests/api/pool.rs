//! The pool does not ping a connection on every acquire, only one idle for over a second: a
//! connection the database dropped while it sat in the pool is still replaced, not handed to a
//! request (PostgreSQL only: a SQLite connection cannot be dropped from outside).

use std::time::Duration;

use sqlx::Connection;

use crate::helpers::{body, spawn_app_with, str_of};

#[tokio::test]
async fn connections_the_database_dropped_while_idle_are_replaced_before_a_request_uses_them() {
    let app = spawn_app_with(&[("TASKLIGHT_CACHE_L1_TTL_MS", "60000")]).await;
    if !app.db.is_postgres() {
        app.stop().await;
        return;
    }
    let user = app.user().await;
    let project = str_of(&app.create_project(&user.access, "Pool").await, "id");
    let path = format!("/projects/{project}/tasks");
    body(app.get(&path, Some(&user.access)).await, 200).await;

    let mut admin = sqlx::PgConnection::connect(app.db.url())
        .await
        .expect("connect to the test database");
    let (dropped,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate the server's connections");
    let _ = admin.close().await;
    assert!(dropped >= 1, "the server had no connection to drop");

    // Longer than the pool trusts an idle connection without a ping.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        body(app.get(&path, Some(&user.access)).await, 200).await;
    }
    app.stop().await;
}
