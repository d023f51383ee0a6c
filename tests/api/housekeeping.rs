//! Housekeeping deletes what ended long enough ago (expired sessions with their refresh
//! tokens, used or expired verification tokens, closed invitations, finished webhook
//! deliveries with their attempts) and keeps everything else, in batches, on both databases.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tasklight::housekeeping::{BATCH, Retention, sweep};
use uuid::Uuid;

use crate::helpers::receiver::Receiver;
use crate::helpers::{TestApp, body, ids, on_db, spawn_app_with, str_of, unique_email};
use crate::webhooks::{WEBHOOK_ENV, subscribe};

/// Runs `sql` with `when` as `$1` and `id` as `$2` on the server's database; returns the rows
/// it changed.
async fn set(app: &TestApp, sql: &'static str, when: DateTime<Utc>, id: &str) -> u64 {
    on_db!(app.server.state.domain.db, |c| {
        let query = sqlx::query(sql)
            .bind(when)
            .bind(Uuid::parse_str(id).unwrap());
        query.execute(c.db()).await.unwrap().rows_affected()
    })
}

/// `SELECT COUNT(*) FROM {table}` on the server's database.
async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    on_db!(app.server.state.domain.db, |c| {
        let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        query.fetch_one(c.db()).await.unwrap()
    })
}

/// Stores a verification token for `user` expiring at `expires_at`; returns its hash.
async fn verification_token(app: &TestApp, user: &str, expires_at: DateTime<Utc>) -> String {
    let hash = Uuid::new_v4().simple().to_string();
    let mut store = app.server.state.domain.read().await.unwrap();
    store
        .insert_verification_token(
            &hash,
            Uuid::parse_str(user).unwrap(),
            "someone@example.com",
            expires_at - Duration::hours(24),
            expires_at,
        )
        .await
        .unwrap();
    hash
}

#[tokio::test]
async fn housekeeping_deletes_what_ended_long_ago_and_keeps_the_rest() {
    let app = spawn_app_with(&WEBHOOK_ENV).await;
    let team = app.team().await;
    let receiver = Receiver::start().await;
    let (webhook, _) = subscribe(
        &app,
        &team,
        &receiver.url("/hook"),
        Some(json!(["task.created"])),
    )
    .await;
    let now = Utc::now();
    let retention = Retention {
        invitations: std::time::Duration::from_secs(30 * 86_400),
        webhook_deliveries: std::time::Duration::from_secs(14 * 86_400),
    };

    // Sessions: the viewer's ended two days ago (past the one-day grace), the outsider's an
    // hour ago (within it); the owner's and the member's are live.
    let sessions = count(&app, "sessions").await;
    let refresh_tokens = count(&app, "refresh_tokens").await;
    let two_days_ago = now - Duration::days(2);
    let expire = "UPDATE sessions SET expires_at = $1 WHERE user_id = $2";
    assert_eq!(set(&app, expire, two_days_ago, &team.viewer.id).await, 1);
    assert_eq!(
        set(&app, expire, now - Duration::hours(1), &team.outsider.id).await,
        1
    );

    // Verification tokens: more than two batches expired two days ago, one used two days ago,
    // one expired an hour ago and one still valid.
    let expired = 2 * BATCH as usize + 50;
    for _ in 0..expired {
        verification_token(&app, &team.member.id, two_days_ago).await;
    }
    let used = verification_token(&app, &team.member.id, now + Duration::hours(1)).await;
    let mut store = app.server.state.domain.read().await.unwrap();
    let marked = store.mark_verification_token_used(&used, two_days_ago);
    assert!(marked.await.unwrap());
    drop(store);
    verification_token(&app, &team.member.id, now - Duration::hours(1)).await;
    verification_token(&app, &team.member.id, now + Duration::hours(1)).await;

    // Invitations: revoked 40 days ago, pending but expired 40 days ago, revoked just now, and
    // pending.
    let long_ago = now - Duration::days(40);
    let mut invitations = Vec::new();
    for _ in 0..4 {
        let invited: Value = body(
            app.post(
                &format!("/projects/{}/invitations", team.project_id),
                Some(&team.owner.access),
                &json!({"email": unique_email(), "role": "member"}),
            )
            .await,
            201,
        )
        .await;
        invitations.push(str_of(&invited, "id"));
    }
    for revoked in [&invitations[0], &invitations[2]] {
        let answer = app
            .delete(
                &format!("/projects/{}/invitations/{revoked}", team.project_id),
                Some(&team.owner.access),
            )
            .await;
        assert_eq!(answer.status(), 204);
    }
    let responded = "UPDATE invitations SET responded_at = $1 WHERE id = $2";
    assert_eq!(set(&app, responded, long_ago, &invitations[0]).await, 1);
    let lapsed = "UPDATE invitations SET expires_at = $1 WHERE id = $2";
    assert_eq!(set(&app, lapsed, long_ago, &invitations[1]).await, 1);

    // Deliveries: four tasks, four delivered events; then one delivered 20 days ago, one
    // dead-lettered 20 days ago, one dead-lettered yesterday, one delivered now.
    for i in 0..4 {
        app.create_task(
            &team.member.access,
            &team.project_id,
            json!({"title": format!("hooked {i}")}),
        )
        .await;
    }
    let deliveries = format!("/webhooks/{webhook}/deliveries?status=delivered&limit=100");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let delivered = loop {
        let listed: Value = body(app.get(&deliveries, Some(&team.owner.access)).await, 200).await;
        let items = listed["items"].as_array().unwrap().clone();
        if items.len() == 4 {
            break items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "4 deliveries within 10 s: {items:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let delivery_ids: Vec<String> = delivered.iter().map(|d| str_of(d, "id")).collect();
    let attempts = count(&app, "webhook_attempts").await;
    assert_eq!(attempts, 4, "one attempt each");
    let twenty_days_ago = now - Duration::days(20);
    let finished = "UPDATE webhook_deliveries SET delivered_at = $1 WHERE id = $2";
    assert_eq!(
        set(&app, finished, twenty_days_ago, &delivery_ids[0]).await,
        1
    );
    let dead = "UPDATE webhook_deliveries SET status = 'dead', delivered_at = NULL, \
                next_attempt_at = $1 WHERE id = $2";
    assert_eq!(set(&app, dead, twenty_days_ago, &delivery_ids[1]).await, 1);
    assert_eq!(
        set(&app, dead, now - Duration::days(1), &delivery_ids[2]).await,
        1
    );

    let swept = sweep(&app.server.state.domain, &retention, Utc::now())
        .await
        .unwrap();
    assert_eq!(swept.sessions, 1, "{swept:?}");
    assert_eq!(swept.verification_tokens, expired as u64 + 1, "{swept:?}");
    assert_eq!(swept.invitations, 2, "{swept:?}");
    assert_eq!(swept.webhook_deliveries, 2, "{swept:?}");

    // What is left, and that it still works.
    assert_eq!(count(&app, "sessions").await, sessions - 1);
    assert!(
        count(&app, "refresh_tokens").await < refresh_tokens,
        "with their tokens"
    );
    assert_eq!(count(&app, "email_verification_tokens").await, 2);
    assert_eq!(count(&app, "invitations").await, 2);
    assert_eq!(count(&app, "webhook_deliveries").await, 2);
    assert_eq!(
        count(&app, "webhook_attempts").await,
        2,
        "with their attempts"
    );
    assert_eq!(app.refresh(&team.viewer.refresh).await.status(), 401);
    assert_eq!(app.refresh(&team.owner.refresh).await.status(), 200);
    for (id, status) in [
        (&delivery_ids[0], 404),
        (&delivery_ids[1], 404),
        (&delivery_ids[2], 200),
        (&delivery_ids[3], 200),
    ] {
        let read = app
            .get(
                &format!("/webhooks/{webhook}/deliveries/{id}"),
                Some(&team.owner.access),
            )
            .await;
        assert_eq!(read.status(), status, "delivery {id}");
    }
    let invitations_page = format!("/projects/{}/invitations", team.project_id);
    let pending = body(
        app.get(&invitations_page, Some(&team.owner.access)).await,
        200,
    )
    .await;
    assert_eq!(ids(&pending), [invitations[3].clone()]);

    let metrics = app.metrics().await;
    for (rows, n) in [
        ("sessions", 1),
        ("verification_tokens", expired + 1),
        ("invitations", 2),
        ("webhook_deliveries", 2),
    ] {
        let line = format!("tasklight_housekeeping_deleted_total{{rows=\"{rows}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    // A second sweep finds nothing more.
    let again = sweep(&app.server.state.domain, &retention, Utc::now())
        .await
        .unwrap();
    assert_eq!(again, Default::default());
    app.stop().await;
}
