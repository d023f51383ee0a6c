//! Webhooks: owners subscribe a URL to their project's events; deliveries are signed (verified
//! here with the standardwebhooks package), in event order, retried until the receiver
//! recovers, dead-lettered when the schedule is used up and redelivered by hand, held back by
//! an open circuit; destinations on private, loopback, link-local or metadata addresses are
//! refused (at subscription and at delivery), and redirects are not followed.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::receiver::{Receiver, standardwebhooks_accepts};
use crate::helpers::{Team, TestApp, body, invalid, problem, spawn_app_with, str_of};

/// Deliveries to loopback over plain http (the receiver), a short retry schedule and a breaker
/// that opens after three failures for one second.
pub(crate) const WEBHOOK_ENV: [(&str, &str); 7] = [
    ("TASKLIGHT_WEBHOOK_ALLOWED_NETS", "127.0.0.0/8"),
    ("TASKLIGHT_WEBHOOK_ALLOW_HTTP", "true"),
    ("TASKLIGHT_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms,300ms"),
    ("TASKLIGHT_WEBHOOK_BREAKER_FAILURES", "3"),
    ("TASKLIGHT_WEBHOOK_BREAKER_COOLDOWN_MS", "1000"),
    ("TASKLIGHT_WEBHOOK_TIMEOUT_MS", "2000"),
    ("TASKLIGHT_WEBHOOK_LEASE_MS", "5000"),
];

pub(crate) async fn subscribe(
    app: &TestApp,
    team: &Team,
    url: &str,
    types: Option<Value>,
) -> (String, String) {
    let mut request = json!({ "url": url, "description": "test receiver" });
    if let Some(types) = types {
        request["event_types"] = types;
    }
    let created = app
        .post(
            &format!("/projects/{}/webhooks", team.project_id),
            Some(&team.owner.access),
            &request,
        )
        .await;
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = created.json().await.unwrap();
    let id = str_of(&created["webhook"], "id");
    assert_eq!(location, format!("/api/v1/webhooks/{id}"));
    (id, str_of(&created, "secret"))
}

async fn deliveries(app: &TestApp, team: &Team, webhook: &str, query: &str) -> Vec<Value> {
    let page = body(
        app.get(
            &format!("/webhooks/{webhook}/deliveries?limit=100{query}"),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    page["items"].as_array().unwrap().clone()
}

/// Polls the subscription until `check` holds (at most `within`).
async fn wait_webhook(
    app: &TestApp,
    team: &Team,
    webhook: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let current = body(
            app.get(&format!("/webhooks/{webhook}"), Some(&team.owner.access))
                .await,
            200,
        )
        .await;
        if check(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "the subscription never got there: {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn new_task(app: &TestApp, team: &Team, title: &str) -> Value {
    app.create_task(
        &team.member.access,
        &team.project_id,
        json!({ "title": title }),
    )
    .await
}

/// A server with `env`, a team, a receiver (answering 500 from the start when `failing`), and
/// the team's project subscribed to it for `types`.
struct Hooked {
    app: TestApp,
    team: Team,
    receiver: Receiver,
    webhook: String,
    secret: String,
}

async fn hooked(env: &[(&str, &str)], failing: bool, types: Option<Value>) -> Hooked {
    let app = spawn_app_with(env).await;
    let team = app.team().await;
    let receiver = Receiver::start().await;
    receiver.set_failing(failing);
    let (webhook, secret) = subscribe(&app, &team, &receiver.url("/hook"), types).await;
    Hooked {
        app,
        team,
        receiver,
        webhook,
        secret,
    }
}

/// Polls the subscription's deliveries (`query` appended to the list's) until `done` holds
/// (at most `within`); returns them.
async fn wait_deliveries(
    app: &TestApp,
    team: &Team,
    webhook: &str,
    query: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let listed = deliveries(app, team, webhook, query).await;
        if done(&listed) {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "the deliveries never got there: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An owner's action on the subscription (`ping`, `rotate-secret`), answered with `status`.
async fn act(app: &TestApp, team: &Team, webhook: &str, action: &str, status: u16) -> Value {
    body(
        app.post(
            &format!("/webhooks/{webhook}/{action}"),
            Some(&team.owner.access),
            &json!({}),
        )
        .await,
        status,
    )
    .await
}

#[tokio::test]
async fn owners_manage_subscriptions_and_the_secret_is_shown_once() {
    let app = spawn_app_with(&WEBHOOK_ENV).await;
    let team = app.team().await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&app, &team, &receiver.url("/hook"), None).await;
    assert!(secret.starts_with("whsec_"), "{secret}");

    let listed = body(
        app.get(
            &format!("/projects/{}/webhooks", team.project_id),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is not listed"
    );
    let read = body(
        app.get(&format!("/webhooks/{id}"), Some(&team.owner.access))
            .await,
        200,
    )
    .await;
    assert_eq!(read["circuit"], "closed");
    assert_eq!(
        read["event_types"].as_array().unwrap().len(),
        10,
        "every type by default (all but project.deleted)"
    );
    assert!(!read.to_string().contains(&secret));

    // Members and viewers may not manage them; outsiders do not see them.
    let path = format!("/projects/{}/webhooks", team.project_id);
    let request = json!({ "url": receiver.url("/x") });
    problem(
        app.post(&path, Some(&team.member.access), &request).await,
        403,
    )
    .await;
    problem(app.get(&path, Some(&team.viewer.access)).await, 403).await;
    problem(
        app.post(&path, Some(&team.outsider.access), &request).await,
        404,
    )
    .await;
    problem(
        app.get(&format!("/webhooks/{id}"), Some(&team.outsider.access))
            .await,
        404,
    )
    .await;
    problem(
        app.get(&format!("/webhooks/{id}"), Some(&team.member.access))
            .await,
        403,
    )
    .await;

    // Bad input names its field.
    invalid(
        app.post(
            &path,
            Some(&team.owner.access),
            &json!({ "url": "ftp://example.com/" }),
        )
        .await,
        "url",
    )
    .await;
    invalid(
        app.post(
            &path,
            Some(&team.owner.access),
            &json!({ "url": receiver.url("/"), "event_types": ["task.exploded"] }),
        )
        .await,
        "event_types[0]",
    )
    .await;
    invalid(
        app.post(
            &path,
            Some(&team.owner.access),
            &json!({ "url": receiver.url("/"), "event_types": [] }),
        )
        .await,
        "event_types",
    )
    .await;

    let changed = body(
        app.patch(
            &format!("/webhooks/{id}"),
            Some(&team.owner.access),
            &json!({ "event_types": ["task.updated", "task.created", "task.created"], "enabled": false }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        changed["event_types"],
        json!(["task.created", "task.updated"])
    );
    assert_eq!(changed["enabled"], false);
    body(
        app.delete(&format!("/webhooks/{id}"), Some(&team.owner.access))
            .await,
        204,
    )
    .await;
    problem(
        app.get(&format!("/webhooks/{id}"), Some(&team.owner.access))
            .await,
        404,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn private_loopback_link_local_and_metadata_destinations_are_refused() {
    // No allow-list: the defaults.
    let app = spawn_app_with(&[]).await;
    let team = app.team().await;
    let path = format!("/projects/{}/webhooks", team.project_id);
    for (url, why) in [
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://10.1.2.3/hook", "10.1.2.3"),
        ("https://192.168.0.10/hook", "192.168.0.10"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("https://[::1]/hook", "::1"),
        ("https://localhost/hook", "resolves to"),
        ("http://93.184.216.34/hook", "https"),
        ("https://user:secret@93.184.216.34/hook", "password"),
    ] {
        let refused = invalid(
            app.post(&path, Some(&team.owner.access), &json!({ "url": url }))
                .await,
            "url",
        )
        .await;
        assert!(refused.to_string().contains(why), "{url}: {refused}");
        assert!(
            !refused.to_string().contains("secret@"),
            "the URL's password is not echoed: {refused}"
        );
    }
    let listed = body(app.get(&path, Some(&team.owner.access)).await, 200).await;
    assert_eq!(listed["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn events_are_delivered_in_order_signed_and_with_the_trace_of_their_request() {
    let app = spawn_app_with(&WEBHOOK_ENV).await;
    let team = app.team().await;
    let receiver = Receiver::start().await;
    let (webhook, secret) = subscribe(
        &app,
        &team,
        &receiver.url("/hook"),
        Some(json!(["task.created", "task.updated", "comment.created"])),
    )
    .await;
    let task = str_of(&new_task(&app, &team, "Delivered").await, "id");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let patched = app
        .req(
            Method::PATCH,
            &format!("/tasks/{task}"),
            Some(&team.member.access),
        )
        .header("X-Request-Id", "webhook-trace-1")
        .header("traceparent", traceparent)
        .json(&json!({ "status": "done" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    body(
        app.post(
            &format!("/tasks/{task}/comments"),
            Some(&team.member.access),
            &json!({ "body": "hi" }),
        )
        .await,
        201,
    )
    .await;
    // Not subscribed: a project rename.
    body(
        app.patch(
            &format!("/projects/{}", team.project_id),
            Some(&team.owner.access),
            &json!({ "name": "R" }),
        )
        .await,
        200,
    )
    .await;
    body(
        app.patch(
            &format!("/tasks/{task}"),
            Some(&team.member.access),
            &json!({ "title": "Again" }),
        )
        .await,
        200,
    )
    .await;

    let got = receiver.wait_accepted(4, Duration::from_secs(10)).await;
    let types: Vec<String> = got.iter().map(|r| str_of(&r.json(), "type")).collect();
    assert_eq!(
        types,
        [
            "task.created",
            "task.updated",
            "comment.created",
            "task.updated"
        ]
    );
    for r in &got {
        let document = r.json();
        assert_eq!(r.header("webhook-id"), str_of(&document, "id"));
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(document["project_id"], team.project_id.as_str());
    }
    let traced = &got[1];
    assert_eq!(traced.json()["request_id"], "webhook-trace-1");
    assert_eq!(traced.json()["data"]["status"], "done");
    let onward = traced.header("traceparent");
    assert!(
        onward.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the request's trace goes on: {onward}"
    );
    assert!(
        !onward.contains("00f067aa0ba902b7"),
        "with a span of its own: {onward}"
    );
    let signed: Vec<(&str, _)> = got.iter().map(|r| (secret.as_str(), r)).collect();
    assert_ne!(
        standardwebhooks_accepts(&signed),
        Some(false),
        "every delivery verifies"
    );
    // With another secret it does not (the check can fail).
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_ne!(standardwebhooks_accepts(&[(other, &got[0])]), Some(true));
    let listed = wait_deliveries(&app, &team, &webhook, "", Duration::from_secs(2), |d| {
        d.len() == 4 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert!(listed.iter().all(|d| d["attempts"] == 1), "{listed:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_once_it_recovers() {
    let Hooked {
        app,
        team,
        receiver,
        webhook,
        ..
    } = hooked(&WEBHOOK_ENV, false, Some(json!(["task.created"]))).await;
    receiver.fail_first(2);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(str_of(&new_task(&app, &team, &format!("t{i}")).await, "id"));
    }
    let got = receiver.wait_accepted(3, Duration::from_secs(10)).await;
    let mut delivered: Vec<String> = got
        .iter()
        .map(|r| str_of(&r.json()["data"], "id"))
        .collect();
    delivered.sort();
    ids.sort();
    assert_eq!(delivered, ids, "every event, once each");
    assert_eq!(
        receiver.received().len(),
        5,
        "two failures, three successes"
    );
    // The last success is recorded just after its answer: wait until all three show delivered.
    let listed = wait_deliveries(&app, &team, &webhook, "", Duration::from_secs(2), |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let attempts: i64 = listed.iter().map(|d| d["attempts"].as_i64().unwrap()).sum();
    assert_eq!(attempts, 5);
    // The two failures fell on one delivery or on two, as the worker's timing had it.
    let retried = listed
        .iter()
        .max_by_key(|d| d["attempts"].as_i64())
        .filter(|d| d["attempts"].as_i64() >= Some(2))
        .expect("a retried delivery");
    let tries = retried["attempts"].as_u64().unwrap() as usize;
    let detail = body(
        app.get(
            &format!("/webhooks/{webhook}/deliveries/{}", str_of(retried, "id")),
            Some(&team.owner.access),
        )
        .await,
        200,
    )
    .await;
    let statuses: Vec<Value> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    let mut expected = vec![json!(500); tries - 1];
    expected.push(json!(204));
    assert_eq!(statuses, expected);
    assert_eq!(detail["attempts"][0]["error"], "the endpoint answered 500");
    assert_eq!(detail["payload"]["type"], "task.created");
    app.stop().await;
}

#[tokio::test]
async fn used_up_retries_dead_letter_and_a_redelivery_by_hand_gets_through() {
    let Hooked {
        app,
        team,
        receiver,
        webhook,
        ..
    } = hooked(&WEBHOOK_ENV, true, Some(json!(["task.created"]))).await;
    new_task(&app, &team, "doomed").await;
    let dead = wait_deliveries(
        &app,
        &team,
        &webhook,
        "&status=dead",
        Duration::from_secs(10),
        |d| !d.is_empty(),
    )
    .await;
    assert_eq!(
        dead[0]["attempts"], 4,
        "the first attempt and three retries"
    );
    assert_eq!(dead[0]["next_attempt_at"], Value::Null);
    receiver.set_failing(false);
    let redelivery = format!("deliveries/{}/redeliver", str_of(&dead[0], "id"));
    act(&app, &team, &webhook, &redelivery, 202).await;
    let got = receiver.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("webhook-id"),
        str_of(&dead[0], "event_id"),
        "the same event id"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_open_circuit_sends_nothing_until_its_probe_and_closes_when_the_endpoint_is_back() {
    // A 2 s cooldown: the 600 ms watched below fits well inside it even on a loaded machine.
    let mut env: Vec<(&str, &str)> = WEBHOOK_ENV.to_vec();
    env.push(("TASKLIGHT_WEBHOOK_BREAKER_COOLDOWN_MS", "2000"));
    let Hooked {
        app,
        team,
        receiver,
        webhook,
        ..
    } = hooked(&env, true, Some(json!(["task.created"]))).await;
    for i in 0..4 {
        new_task(&app, &team, &format!("t{i}")).await;
    }
    let open = wait_webhook(&app, &team, &webhook, Duration::from_secs(10), |w| {
        w["circuit"] == "open"
    })
    .await;
    assert!(open["consecutive_failures"].as_i64() >= Some(3), "{open}");
    let hits = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.received().len(),
        hits,
        "no request reaches the endpoint while the circuit is open"
    );
    receiver.set_failing(false);
    let got = receiver.wait_accepted(4, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4, "every event after the circuit closed");
    let requests = receiver.received();
    let probe_gap = requests[hits].at - requests[hits - 1].at;
    assert!(
        probe_gap >= Duration::from_millis(1900),
        "the probe waited for the cooldown: {probe_gap:?}"
    );
    let closed = wait_webhook(&app, &team, &webhook, Duration::from_secs(2), |w| {
        w["circuit"] == "closed"
    })
    .await;
    assert_eq!(closed["failing_since"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let Hooked {
        app,
        team,
        receiver: redirecting,
        webhook,
        ..
    } = hooked(&WEBHOOK_ENV, false, None).await;
    let target = Receiver::start().await;
    redirecting.redirect_to(&target.url("/elsewhere"));
    act(&app, &team, &webhook, "ping", 202).await;
    let attempted = wait_deliveries(&app, &team, &webhook, "", Duration::from_secs(10), |d| {
        d.first().is_some_and(|d| d["attempts"].as_i64() >= Some(1))
    })
    .await;
    assert_eq!(attempted[0]["last_status"], 302);
    assert_eq!(
        attempted[0]["status"], "pending",
        "a redirect is a failure, retried"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        target.received().is_empty(),
        "the redirect's target got nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_ping_and_a_rotation_sign_with_both_secrets_during_the_overlap() {
    let Hooked {
        app,
        team,
        receiver,
        webhook,
        secret: old,
    } = hooked(&WEBHOOK_ENV, false, None).await;
    act(&app, &team, &webhook, "ping", 202).await;
    let first = receiver.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(first[0].json()["type"], "webhook.ping");
    assert_eq!(first[0].header("webhook-signature").split(' ').count(), 1);

    let rotated = act(&app, &team, &webhook, "rotate-secret", 200).await;
    let new = str_of(&rotated, "secret");
    assert_ne!(new, old);
    assert!(rotated["webhook"]["previous_secret_expires_at"].is_string());
    act(&app, &team, &webhook, "ping", 202).await;
    let both = receiver.wait_accepted(2, Duration::from_secs(10)).await;
    let second = &both[1];
    assert_eq!(second.header("webhook-signature").split(' ').count(), 2);
    let signed = [
        (old.as_str(), &first[0]),
        (old.as_str(), second),
        (new.as_str(), second),
    ];
    assert_ne!(
        standardwebhooks_accepts(&signed),
        Some(false),
        "both secrets verify"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_delivery_checks_the_address_again() {
    // Subscribed where loopback is allowed; then the instance restarts without the allow-list.
    let Hooked {
        app,
        team,
        receiver,
        webhook,
        ..
    } = hooked(&WEBHOOK_ENV, false, Some(json!(["task.created"]))).await;
    let strict = vec![("TASKLIGHT_WEBHOOK_ALLOW_HTTP".to_owned(), "true".to_owned())];
    let app = app.restart_with(strict).await;
    new_task(&app, &team, "never sent").await;
    let attempted = wait_deliveries(&app, &team, &webhook, "", Duration::from_secs(10), |d| {
        d.first().is_some_and(|d| d["attempts"].as_i64() >= Some(1))
    })
    .await;
    assert!(
        str_of(&attempted[0], "last_error").contains("127.0.0.1"),
        "{attempted:?}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the loopback receiver"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled_with_the_reason_and_switched_back_on_by_its_owner()
 {
    // Retries enough that the delivery is still waiting, not dead-lettered, when it is disabled.
    let schedule = vec!["100ms"; 20].join(",");
    let mut env: Vec<(&str, &str)> = WEBHOOK_ENV.to_vec();
    env.extend([
        ("TASKLIGHT_WEBHOOK_DISABLE_AFTER_SECS", "1"),
        ("TASKLIGHT_WEBHOOK_BREAKER_COOLDOWN_MS", "300"),
        ("TASKLIGHT_WEBHOOK_RETRY_SCHEDULE", schedule.as_str()),
    ]);
    let Hooked {
        app,
        team,
        receiver,
        webhook,
        ..
    } = hooked(&env, true, Some(json!(["task.created"]))).await;
    new_task(&app, &team, "never arrives").await;
    let disabled = wait_webhook(&app, &team, &webhook, Duration::from_secs(8), |w| {
        w["disabled_reason"].is_string()
    })
    .await;
    let reason = str_of(&disabled, "disabled_reason");
    assert!(reason.contains("answered 500"), "{reason}");
    assert!(disabled["failing_since"].is_string());
    let hits = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.received().len(),
        hits,
        "a disabled endpoint gets nothing"
    );

    receiver.set_failing(false);
    let enabled = body(
        app.patch(
            &format!("/webhooks/{webhook}"),
            Some(&team.owner.access),
            &json!({ "enabled": true }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (
            enabled["disabled_reason"].clone(),
            enabled["circuit"].clone()
        ),
        (Value::Null, json!("closed"))
    );
    let got = receiver.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(
        got.len(),
        1,
        "the waiting delivery goes out once switched back on"
    );
    app.stop().await;
}
