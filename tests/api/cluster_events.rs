//! A project's event stream across instances: a client on B sees a change made on A (through the
//! outbox, woken by Redis pub/sub), and a client that reconnects to C with `Last-Event-ID` gets
//! exactly the events it missed. Fan-out latency over 1,000 changes is printed (`[measured]`).
//!
//! Needs Redis (`TEST_REDIS_URL`), like `cluster.rs`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{Cluster, redis_url};
use crate::helpers::sse::SseStream;

/// Changes made on A while B's client watches.
const CHANGES: usize = 1_000;

/// A stream of `project` on instance `i`, whatever the answer.
async fn open_on(
    cluster: &Cluster,
    i: usize,
    project: &str,
    token: &str,
    last: Option<&str>,
) -> SseStream {
    let mut request = cluster
        .client()
        .get(format!(
            "http://{}/api/v1/projects/{project}/events",
            cluster.addr(i)
        ))
        .bearer_auth(token);
    if let Some(id) = last {
        request = request.header("Last-Event-ID", id);
    }
    SseStream::new(request.send().await.unwrap())
}

/// A stream of `project` on instance `i`, which must open.
async fn stream_on(
    cluster: &Cluster,
    i: usize,
    project: &str,
    token: &str,
    last: Option<&str>,
) -> SseStream {
    let stream = open_on(cluster, i, project, token, last).await;
    assert_eq!(stream.status, 200);
    stream
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_b_sees_each_change_made_on_a_and_a_reconnect_to_c_gets_exactly_the_missed_ones()
 {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let team = cluster.a.team().await;
    let task = format!("/tasks/{}", team.task_id);
    let token = &team.member.access;
    let mut on_b = stream_on(&cluster, 1, &team.project_id, token, None).await;

    let mut latencies = Vec::with_capacity(CHANGES);
    let mut last_id = None;
    for i in 0..CHANGES {
        let title = format!("change {i}");
        let answered = cluster
            .a
            .patch(&task, Some(token), &json!({"title": title}))
            .await;
        assert_eq!(answered.status(), 200);
        let acknowledged = Instant::now();
        // The team's setup may come first (see SseStream::next_except).
        let frame = on_b
            .next_except(
                &["project.created", "member.added", "task.created"],
                Duration::from_secs(3),
            )
            .await
            .unwrap_or_else(|| panic!("change {i} never reached the client on B"));
        latencies.push(acknowledged.elapsed());
        assert_eq!(frame.event, "task.updated");
        assert_eq!(
            frame.data["data"]["title"],
            title.as_str(),
            "in order, none lost"
        );
        last_id = frame.id;
    }
    latencies.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    println!(
        "[measured] change on A to its event at a client on B, {CHANGES} changes: p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");

    // The client goes away; five changes happen; it reconnects to C with the last id it saw.
    drop(on_b);
    for i in 0..5 {
        let answered = cluster
            .a
            .patch(&task, Some(token), &json!({"title": format!("missed {i}")}))
            .await;
        assert_eq!(answered.status(), 200);
    }
    let mut on_c = stream_on(&cluster, 2, &team.project_id, token, last_id.as_deref()).await;
    for i in 0..5 {
        let frame = on_c.expect().await;
        assert_eq!(frame.data["data"]["title"], format!("missed {i}"));
    }
    assert!(
        on_c.next(Duration::from_millis(500)).await.is_none(),
        "exactly the missed events, no more"
    );
    cluster.stop().await;
}

/// Sets the lease of `webhook` as a worker of an instance that then died would have left it:
/// held by `owner` until `until`.
async fn leave_lease(
    cluster: &Cluster,
    webhook: &str,
    owner: &str,
    until: chrono::DateTime<chrono::Utc>,
) {
    let id = uuid::Uuid::parse_str(webhook).unwrap();
    let sql = "UPDATE webhooks SET lease_owner = $1, lease_until = $2 WHERE id = $3";
    let done = crate::helpers::on_db!(cluster.a.server.state.domain.db, |c| {
        let query = sqlx::query(sql).bind(owner).bind(until).bind(id);
        query.execute(c.db()).await.unwrap().rows_affected()
    });
    assert_eq!(done, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_deliver_every_event_once_the_receiver_recovers_and_after_a_dead_workers_lease()
 {
    let Some(redis) = redis_url() else { return };
    // Enough retries that no delivery is dead-lettered by the receiver's six failures (the
    // circuit opens after three and probes every second).
    let mut env = crate::webhooks::WEBHOOK_ENV.to_vec();
    env.push((
        "TASKLIGHT_WEBHOOK_RETRY_SCHEDULE",
        "100ms,200ms,300ms,400ms,500ms,600ms,700ms,800ms",
    ));
    let cluster = Cluster::start_with(&redis, &env).await;
    let team = cluster.a.team().await;
    let receiver = crate::helpers::receiver::Receiver::start().await;
    receiver.fail_first(6);
    let (webhook, secret) = crate::webhooks::subscribe(
        &cluster.a,
        &team,
        &receiver.url("/hook"),
        Some(json!(["task.created"])),
    )
    .await;

    // Thirty tasks, made on A, B and C in turn.
    let mut made = Vec::new();
    for i in 0..30 {
        let created = cluster
            .client()
            .post(format!(
                "http://{}/api/v1/projects/{}/tasks",
                cluster.addr(i % 3),
                team.project_id
            ))
            .bearer_auth(&team.member.access)
            .json(&json!({ "title": format!("task {i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        made.push(
            created.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let accepted = loop {
        let accepted = receiver.accepted();
        let mut ids: Vec<String> = accepted
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.len() >= 30 {
            break accepted;
        }
        if Instant::now() > deadline {
            let listed = cluster
                .a
                .get(
                    &format!("/webhooks/{webhook}/deliveries?limit=100"),
                    Some(&team.owner.access),
                )
                .await
                .text()
                .await
                .unwrap();
            panic!(
                "30 events delivered within 20 s; got {}; deliveries: {listed}",
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut delivered: Vec<String> = accepted
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    let total = delivered.len();
    delivered.sort();
    delivered.dedup();
    made.sort();
    assert_eq!(delivered, made, "every task's event, none lost");
    let senders: std::collections::BTreeSet<String> = {
        let listed = cluster
            .a
            .get(
                &format!("/webhooks/{webhook}/deliveries?limit=100"),
                Some(&team.owner.access),
            )
            .await;
        let listed: serde_json::Value = listed.json().await.unwrap();
        let mut instances = std::collections::BTreeSet::new();
        for d in listed["items"].as_array().unwrap() {
            let detail: serde_json::Value = cluster
                .a
                .get(
                    &format!(
                        "/webhooks/{webhook}/deliveries/{}",
                        d["id"].as_str().unwrap()
                    ),
                    Some(&team.owner.access),
                )
                .await
                .json()
                .await
                .unwrap();
            for attempt in detail["attempts"].as_array().unwrap() {
                instances.insert(attempt["instance_id"].as_str().unwrap().to_owned());
            }
        }
        instances
    };
    println!(
        "[measured] 30 events through a receiver that failed its first 6 requests: {} requests, {} accepted, {} duplicates; attempts made by {senders:?}",
        receiver.received().len(),
        total,
        total - 30
    );
    let signed: Vec<(&str, _)> = accepted.iter().map(|r| (secret.as_str(), r)).collect();
    assert_ne!(
        crate::helpers::receiver::standardwebhooks_accepts(&signed),
        Some(false)
    );

    // A worker of an instance that died holds the endpoint's lease for 5 s more: nothing goes out
    // until it runs out, then another instance delivers.
    let before = receiver.received().len();
    let lease_ends = chrono::Utc::now() + chrono::Duration::seconds(5);
    leave_lease(&cluster, &webhook, "killed-instance/0", lease_ends).await;
    let stranded = cluster
        .a
        .create_task(
            &team.member.access,
            &team.project_id,
            json!({ "title": "stranded" }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        receiver.received().len(),
        before,
        "nothing while the dead worker's lease lasts"
    );
    let got = receiver
        .wait_accepted(total + 1, Duration::from_secs(5))
        .await;
    let last = got.last().unwrap();
    assert_eq!(last.json()["data"]["id"], stranded["id"]);
    let after_lease = chrono::Utc::now() - lease_ends;
    println!(
        "[measured] the stranded event was delivered within {} ms after the dead worker's lease ran out",
        after_lease.num_milliseconds()
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_stream_limit_counts_streams_on_every_instance() {
    let Some(redis) = redis_url() else { return };
    // Heartbeats every second, so that a closed connection is noticed within two of them.
    let cluster = Cluster::start_with(
        &redis,
        &[
            ("TASKLIGHT_SSE_MAX_STREAMS_PER_USER", "2"),
            ("TASKLIGHT_SSE_HEARTBEAT_SECS", "1"),
        ],
    )
    .await;
    let team = cluster.a.team().await;
    let token = &team.member.access;
    let on_a = stream_on(&cluster, 0, &team.project_id, token, None).await;
    let _on_b = stream_on(&cluster, 1, &team.project_id, token, None).await;
    let refused = open_on(&cluster, 2, &team.project_id, token, None).await;
    assert_eq!(
        refused.status, 429,
        "a third stream, on C, is over the limit of 2 across A, B and C"
    );
    // Another user is not affected.
    let _viewer = stream_on(&cluster, 2, &team.project_id, &team.viewer.access, None).await;
    // Closing the one on A frees its slot (a write to the closed connection fails at a heartbeat;
    // the slot is released as the stream ends).
    drop(on_a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = open_on(&cluster, 2, &team.project_id, token, None).await;
        if again.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot of the closed stream on A is freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.stop().await;
}
