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

async fn stream_on(
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
    let stream = SseStream::new(request.send().await.unwrap());
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
        let frame = on_b
            .next(Duration::from_secs(3))
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
