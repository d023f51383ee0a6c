//! Concurrent writers: optimistic locking, unique constraints, and a saturated connection pool.

use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::json;
use sqlx::Connection;

use crate::helpers::{
    PASSWORD, TestDb, body, header, ids, problem, spawn_app, spawn_app_with, str_of, unique_email,
};

/// Sends the requests all at once, each on its own task.
async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<Response> {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|r| tokio::spawn(r.send()))
        .collect();
    let mut responses = Vec::new();
    for handle in handles {
        responses.push(handle.await.unwrap().expect("an answer"));
    }
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_with_the_same_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project = str_of(&app.create_project(&user.access, "Race").await, "id");
    let task = app
        .create_task(&user.access, &project, json!({"title": "contended"}))
        .await;
    let path = format!("/tasks/{}", str_of(&task, "id"));
    let requests = (0..8)
        .map(|i| {
            let change = json!({"title": format!("writer {i}")});
            app.req(Method::PATCH, &path, Some(&user.access))
                .header("If-Match", "\"v1\"")
                .json(&change)
        })
        .collect();
    let mut winners = Vec::new();
    for resp in all_at_once(requests).await {
        match resp.status().as_u16() {
            200 => winners.push(body(resp, 200).await),
            _ => {
                problem(resp, 412).await;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:#?}");
    let current = body(app.get(&path, Some(&user.access)).await, 200).await;
    assert_eq!(current["version"], 2);
    assert_eq!(current["title"], winners[0]["title"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_without_if_match_all_apply_in_turn() {
    let app = spawn_app().await;
    let user = app.user().await;
    let project = str_of(&app.create_project(&user.access, "Queue").await, "id");
    let task = app
        .create_task(&user.access, &project, json!({"title": "counter"}))
        .await;
    let path = format!("/tasks/{}", str_of(&task, "id"));
    let requests = (0..8)
        .map(|i| {
            app.req(Method::PATCH, &path, Some(&user.access))
                .json(&json!({"tags": [format!("w{i}")]}))
        })
        .collect();
    let mut versions = Vec::new();
    for resp in all_at_once(requests).await {
        let etag = header(&resp, "etag");
        let task = body(resp, 200).await;
        assert_eq!(etag, format!("\"v{}\"", task["version"]));
        versions.push(task["version"].as_i64().unwrap());
    }
    versions.sort();
    assert_eq!(
        versions,
        (2..=9).collect::<Vec<i64>>(),
        "every update got its own version"
    );
    assert_eq!(
        body(app.get(&path, Some(&user.access)).await, 200).await["version"],
        9
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_of_one_email_create_exactly_one_user() {
    let app = spawn_app().await;
    let email = unique_email();
    let request = json!({"email": email, "password": PASSWORD, "display_name": "Twin"});
    let requests = (0..4)
        .map(|_| app.req(Method::POST, "/auth/register", None).json(&request))
        .collect();
    let mut created = 0;
    for resp in all_at_once(requests).await {
        match resp.status().as_u16() {
            201 => {
                body(resp, 201).await;
                created += 1;
            }
            _ => {
                problem(resp, 409).await;
            }
        }
    }
    assert_eq!(created, 1);
    app.login(&email, PASSWORD).await;
    app.stop().await;
}

/// A connection outside the server that holds the database busy until released.
enum DbLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl DbLock {
    async fn take(db: &TestDb) -> Self {
        if db.is_postgres() {
            let mut conn = sqlx::PgConnection::connect(db.url())
                .await
                .expect("connect to the test database");
            let sql = "BEGIN; LOCK TABLE projects IN ACCESS EXCLUSIVE MODE;";
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .expect("lock the projects table");
            Self::Postgres(conn)
        } else {
            let mut conn = sqlx::SqliteConnection::connect(db.url())
                .await
                .expect("open the SQLite file");
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut conn)
                .await
                .expect("take the write lock");
            Self::Sqlite(conn)
        }
    }

    async fn release(self) {
        match self {
            Self::Postgres(mut conn) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("unlock");
                let _ = conn.close().await;
            }
            Self::Sqlite(mut conn) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("unlock");
                let _ = conn.close().await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_answers_503_promptly_and_the_blocked_write_completes_later() {
    let app = spawn_app_with(&[
        ("TASKLIGHT_DB_MAX_CONNECTIONS", "1"),
        ("TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS", "200"),
        ("TASKLIGHT_DB_BUSY_TIMEOUT_MS", "3000"),
    ])
    .await;
    let admin = app.admin().await;
    let lock = DbLock::take(&app.db).await;
    let write = app
        .req(Method::POST, "/projects", Some(&admin.access))
        .json(&json!({"name": "Blocked"}));
    let blocked = tokio::spawn(write.send());

    // The blocked write holds the only connection: a read that needs one is refused, not queued.
    let started = Instant::now();
    let refused = loop {
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "no 503 within 2.5 s"
        );
        let sent = Instant::now();
        let probe = app
            .req(Method::GET, "/admin/users", Some(&admin.access))
            .send();
        let resp = tokio::time::timeout(Duration::from_secs(2), probe)
            .await
            .expect("the probe hung")
            .unwrap();
        if resp.status() == 503 {
            assert!(
                sent.elapsed() < Duration::from_secs(2),
                "the 503 took {:?}",
                sent.elapsed()
            );
            break resp;
        }
        assert_eq!(resp.status(), 200, "the probe got neither 200 nor 503");
        assert!(
            !blocked.is_finished(),
            "the write finished while the database was locked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    problem(refused, 503).await;
    assert!(
        !blocked.is_finished(),
        "the write gave up while the database was locked"
    );

    lock.release().await;
    let created = tokio::time::timeout(Duration::from_secs(5), blocked)
        .await
        .expect("the write finished");
    let project = body(created.unwrap().unwrap(), 201).await;
    let list = body(app.get("/projects", Some(&admin.access)).await, 200).await;
    assert_eq!(ids(&list), vec![str_of(&project, "id")]);
    app.stop().await;
}
