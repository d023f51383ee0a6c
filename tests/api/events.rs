//! The outbox and a project's event stream (`GET /projects/{id}/events`, SSE): every audited
//! change writes its event in its own transaction; members follow the project's events live;
//! `Last-Event-ID` resumes with exactly the missed events; tickets open one stream once; a
//! stream ends within a second of the member's removal, the session's end or the drain.
//! (Across instances: `cluster.rs`.)

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::sse::{Frame, SseStream};
use crate::helpers::{TestApp, body, problem, spawn_app, spawn_app_with, str_of};

/// The team's setup (`TestApp::team`), which a stream opened right after it may begin with.
const SETUP: [&str; 3] = ["project.created", "member.added", "task.created"];

/// The next frame that is an event (not a frame of the stream itself, nor the team's setup).
async fn next_event(stream: &mut SseStream) -> Frame {
    let frame = stream
        .next_except(&SETUP, Duration::from_secs(10))
        .await
        .expect("an event within 10 s");
    assert!(
        frame.id.is_some(),
        "an event frame carries its id: {frame:?}"
    );
    frame
}

/// Every event the outbox holds, oldest first, as (type, request id, traceparent): read from
/// the table itself, not through the readers' bound (on PostgreSQL that waits for the oldest
/// transaction of the whole server, which other tests' databases share).
async fn outbox(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let sql = "SELECT event_type, request_id, traceparent FROM events ORDER BY tx_id, seq";
    crate::helpers::on_db!(app.server.state.domain.db, |c| {
        sqlx::query_as(sql).fetch_all(c.db()).await.unwrap()
    })
}

#[tokio::test]
async fn every_audited_change_writes_its_event_and_a_refused_write_writes_neither() {
    let app = spawn_app().await;
    let team = app.team().await;
    let task = format!("/tasks/{}", team.task_id);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let patched = app
        .req(Method::PATCH, &task, Some(&team.member.access))
        .header("X-Request-Id", "outbox-test-1")
        .header("traceparent", traceparent)
        .json(&json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    // A stale If-Match is refused: no change, no audit entry, no event.
    let before = outbox(&app).await.len();
    let stale = app
        .req(Method::PATCH, &task, Some(&team.member.access))
        .header("If-Match", "\"1\"")
        .json(&json!({"title": "never"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let events = outbox(&app).await;
    assert_eq!(events.len(), before, "a refused write leaves no event");

    // One event per audit entry, in order, with the same request ids.
    let audit = body(
        app.get(
            &format!("/projects/{}/audit?limit=100", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    let mut audited: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (str_of(e, "action"), str_of(e, "request_id")))
        .collect();
    audited.reverse();
    let project_events: Vec<(String, String)> = events
        .iter()
        .filter(|(kind, ..)| !kind.starts_with("user."))
        .map(|(kind, request, _)| (kind.clone(), request.clone()))
        .collect();
    assert_eq!(project_events, audited);
    let kinds: Vec<&str> = project_events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "project.created",
            "member.added",
            "member.added",
            "task.created",
            "task.updated"
        ]
    );
    // The request's trace context travels with its event: same trace id, the server span as
    // the parent.
    let (_, request_id, parent) = events.last().unwrap();
    assert_eq!(request_id, "outbox-test-1");
    let parent = parent.as_deref().expect("the event carries a traceparent");
    assert!(
        parent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{parent}"
    );
    assert!(
        !parent.contains("b7ad6b7169203331"),
        "the parent is the server span: {parent}"
    );
    app.stop().await;
}

#[tokio::test]
async fn members_follow_the_projects_changes_as_they_happen() {
    let app = spawn_app().await;
    let team = app.team().await;
    let mut stream = app
        .stream(&team.project_id, &team.viewer.access, None)
        .await;
    assert_eq!(stream.status, 200);
    let content_type = stream.headers["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert!(
        stream.headers.get("content-encoding").is_none(),
        "streams are not compressed"
    );

    let task = format!("/tasks/{}", team.task_id);
    body(
        app.patch(&task, Some(&team.member.access), &json!({"title": "Live"}))
            .await,
        200,
    )
    .await;
    let comment = body(
        app.post(
            &format!("{task}/comments"),
            Some(&team.member.access),
            &json!({"body": "Hi"}),
        )
        .await,
        201,
    )
    .await;
    body(app.delete(&task, Some(&team.owner.access)).await, 204).await;

    let updated = next_event(&mut stream).await;
    assert_eq!(updated.event, "task.updated");
    assert_eq!(updated.data["type"], "task.updated");
    assert_eq!(updated.data["id"].as_str(), updated.id.as_deref());
    assert_eq!(updated.data["project_id"], team.project_id.as_str());
    assert_eq!(updated.data["actor_id"], team.member.id.as_str());
    assert_eq!(updated.data["data"]["title"], "Live");
    assert_eq!(updated.data["data"]["id"], team.task_id.as_str());
    let commented = next_event(&mut stream).await;
    assert_eq!(commented.event, "comment.created");
    assert_eq!(commented.data["data"]["id"], comment["id"]);
    assert_eq!(commented.data["data"]["body"], "Hi");
    let deleted = next_event(&mut stream).await;
    assert_eq!(deleted.event, "task.deleted");
    assert_eq!(
        deleted.data["data"],
        json!({"id": team.task_id, "project_id": team.project_id})
    );
    // Event ids (UUIDv7) ascend.
    assert!(updated.id < commented.id && commented.id < deleted.id);
    app.stop().await;
}

#[tokio::test]
async fn last_event_id_resumes_with_exactly_the_missed_events() {
    let app = spawn_app().await;
    let team = app.team().await;
    let task = format!("/tasks/{}", team.task_id);
    let mut first = app
        .stream(&team.project_id, &team.member.access, None)
        .await;
    body(
        app.patch(&task, Some(&team.member.access), &json!({"title": "one"}))
            .await,
        200,
    )
    .await;
    let seen = next_event(&mut first).await;
    drop(first);
    for title in ["two", "three", "four"] {
        body(
            app.patch(&task, Some(&team.member.access), &json!({"title": title}))
                .await,
            200,
        )
        .await;
    }
    let mut resumed = app
        .stream(&team.project_id, &team.member.access, seen.id.as_deref())
        .await;
    let titles: Vec<Value> = [
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
    ]
    .iter()
    .map(|f| f.data["data"]["title"].clone())
    .collect();
    assert_eq!(titles, [json!("two"), json!("three"), json!("four")]);
    // Nothing else was missed, and the stream goes on live.
    assert!(resumed.next(Duration::from_millis(300)).await.is_none());
    body(
        app.patch(&task, Some(&team.member.access), &json!({"title": "five"}))
            .await,
        200,
    )
    .await;
    assert_eq!(next_event(&mut resumed).await.data["data"]["title"], "five");

    // An id the outbox does not hold: a resync frame first, then live.
    let mut lost = app
        .stream(
            &team.project_id,
            &team.member.access,
            Some("0194f0a9-1111-7222-8333-444455556666"),
        )
        .await;
    let resync = lost.expect().await;
    assert_eq!(
        (resync.event.as_str(), resync.id.as_deref()),
        ("stream.resync", None)
    );
    app.stop().await;
}

#[tokio::test]
async fn only_members_follow_and_a_ticket_opens_one_stream_once() {
    let app = spawn_app().await;
    let team = app.team().await;
    let events = format!("/projects/{}/events", team.project_id);
    problem(app.get(&events, None).await, 401).await;
    problem(app.get(&events, Some(&team.outsider.access)).await, 404).await;
    problem(
        app.post(
            &format!("{events}/tickets"),
            Some(&team.outsider.access),
            &json!({}),
        )
        .await,
        404,
    )
    .await;

    let issued = body(
        app.post(
            &format!("{events}/tickets"),
            Some(&team.viewer.access),
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    let url = str_of(&issued, "url");
    assert_eq!(
        url,
        format!("/api/v1{events}?ticket={}", str_of(&issued, "ticket"))
    );
    let mut stream = SseStream::new(app.client.get(app.url(&url)).send().await.unwrap());
    assert_eq!(stream.status, 200);
    body(
        app.patch(
            &format!("/tasks/{}", team.task_id),
            Some(&team.member.access),
            &json!({"title": "t"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(next_event(&mut stream).await.event, "task.updated");
    // Used once: refused after.
    let again = problem(app.client.get(app.url(&url)).send().await.unwrap(), 401).await;
    assert!(str_of(&again, "detail").contains("ticket"), "{again}");
    // A ticket opens only its own project's stream.
    let other = str_of(
        &app.create_project(&team.viewer.access, "Other").await,
        "id",
    );
    let ticket = body(
        app.post(
            &format!("{events}/tickets"),
            Some(&team.viewer.access),
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    let elsewhere = format!(
        "/projects/{other}/events?ticket={}",
        str_of(&ticket, "ticket")
    );
    problem(
        app.client.get(app.url(&elsewhere)).send().await.unwrap(),
        401,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn expired_tickets_open_nothing() {
    let app = spawn_app_with(&[("TASKLIGHT_SSE_TICKET_TTL_SECS", "5")]).await;
    let team = app.team().await;
    let events = format!("/projects/{}/events", team.project_id);
    let issued = body(
        app.post(
            &format!("{events}/tickets"),
            Some(&team.member.access),
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    let expires = chrono::DateTime::parse_from_rfc3339(&str_of(&issued, "expires_at")).unwrap();
    let left = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .unwrap();
    assert!(left <= Duration::from_secs(5), "{left:?}");
    tokio::time::sleep(left + Duration::from_millis(200)).await;
    problem(
        app.client
            .get(app.url(&str_of(&issued, "url")))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    app.stop().await;
}

/// Waits for the stream to end and returns the reason its last frame gave.
async fn end_reason(stream: &mut SseStream, within: Duration) -> String {
    let (closed, frames) = stream.closed_within(within).await;
    assert!(
        closed,
        "the stream ends within {within:?}; frames: {frames:?}"
    );
    let last = frames.last().expect("a stream.end frame");
    assert_eq!(last.event, "stream.end", "{frames:?}");
    str_of(&last.data, "reason")
}

#[tokio::test]
async fn a_removed_members_stream_ends_at_once_and_a_logged_out_sessions_within_a_second() {
    let app = spawn_app().await;
    let team = app.team().await;
    let mut member = app
        .stream(&team.project_id, &team.member.access, None)
        .await;
    let mut viewer = app
        .stream(&team.project_id, &team.viewer.access, None)
        .await;
    assert_eq!((member.status, viewer.status), (200, 200));

    let removed = Instant::now();
    app.remove_member(&team.owner.access, &team.project_id, &team.member.id)
        .await;
    assert_eq!(
        end_reason(&mut member, Duration::from_secs(1)).await,
        "membership_ended"
    );
    println!(
        "[measured] stream ended {:?} after the member's removal",
        removed.elapsed()
    );

    let logged_out = Instant::now();
    body(
        app.send(
            Method::POST,
            "/auth/logout",
            Some(&team.viewer.access),
            None,
        )
        .await,
        204,
    )
    .await;
    assert_eq!(
        end_reason(&mut viewer, Duration::from_secs(1)).await,
        "session_ended"
    );
    println!(
        "[measured] stream ended {:?} after the logout",
        logged_out.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn streams_end_when_the_instance_drains_and_new_ones_are_refused() {
    let app = spawn_app().await;
    let team = app.team().await;
    let mut stream = app
        .stream(&team.project_id, &team.member.access, None)
        .await;
    assert_eq!(stream.status, 200);
    app.server.state.drain.start();
    assert_eq!(
        end_reason(&mut stream, Duration::from_secs(1)).await,
        "drain"
    );
    let refused = app
        .get(
            &format!("/projects/{}/events", team.project_id),
            Some(&team.member.access),
        )
        .await;
    problem(refused, 503).await;
    app.stop().await;
}

#[tokio::test]
async fn a_user_holds_at_most_the_configured_number_of_streams() {
    // A closed connection is noticed when the next heartbeat is written.
    let app = spawn_app_with(&[
        ("TASKLIGHT_SSE_MAX_STREAMS_PER_USER", "2"),
        ("TASKLIGHT_SSE_HEARTBEAT_SECS", "1"),
    ])
    .await;
    let team = app.team().await;
    let one = app
        .stream(&team.project_id, &team.member.access, None)
        .await;
    let two = app
        .stream(&team.project_id, &team.member.access, None)
        .await;
    assert_eq!((one.status, two.status), (200, 200));
    let refused = app
        .get(
            &format!("/projects/{}/events", team.project_id),
            Some(&team.member.access),
        )
        .await;
    assert_eq!(refused.headers()["retry-after"], "5");
    let refused = problem(refused, 429).await;
    assert!(
        str_of(&refused, "detail").contains("event streams"),
        "{refused}"
    );
    // Another user is not affected; a closed stream frees its slot.
    assert_eq!(
        app.stream(&team.project_id, &team.viewer.access, None)
            .await
            .status,
        200
    );
    drop(one);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let again = app
            .stream(&team.project_id, &team.member.access, None)
            .await;
        if again.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot is freed within 3 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn idle_streams_get_heartbeats() {
    let app = spawn_app_with(&[("TASKLIGHT_SSE_HEARTBEAT_SECS", "1")]).await;
    let team = app.team().await;
    let mut stream = app
        .stream(&team.project_id, &team.member.access, None)
        .await;
    let (closed, _) = stream.closed_within(Duration::from_millis(2500)).await;
    assert!(!closed);
    assert!(stream.heartbeats >= 2, "heartbeats: {}", stream.heartbeats);
    app.stop().await;
}
