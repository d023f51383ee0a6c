//! Several instances, one system: three servers on one database and one Redis key prefix. A
//! change on one instance reaches the others' in-process caches through Redis within a second,
//! not when the in-process TTL (set to a minute here) runs out (a task update, a comment that
//! changes a task's count and ETag, a removed member, a logout); rate limits are shared; an
//! idempotency key is honoured by every instance; and when Redis goes away the instances keep
//! answering and come back to it without a restart.
//!
//! Needs Redis: `TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test`. CI sets it; with `CI` set
//! and no Redis, these tests fail instead of passing unchecked. The Redis-outage test starts a
//! Redis of its own (`redis-server` on the PATH) so that it can stop it.
//!
//! Measured figures (staleness, overshoot) are printed with a `[measured]` prefix; run with
//! `--nocapture` to see them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tasklight::server::RunningServer;

use crate::helpers::{INSTANCE_ID, TestApp, base_config, spawn_app_with};

/// The Redis of the multi-instance tests, or `None` (with a note) when not configured locally.
pub(crate) fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must run the multi-instance tests: set TEST_REDIS_URL")
        }
        _ => {
            eprintln!("multi-instance tests not run: set TEST_REDIS_URL to run them");
            None
        }
    }
}

/// Instance A (with the test helpers), B and C.
pub(crate) struct Cluster {
    pub(crate) a: TestApp,
    others: Vec<RunningServer>,
    client: reqwest::Client,
    prefix: String,
}

const NAMES: [&str; 3] = ["A", "B", "C"];

impl Cluster {
    pub(crate) async fn start(redis: &str) -> Self {
        Self::start_with(redis, &[]).await
    }

    /// Three instances sharing the database of A, Redis and a fresh key prefix; `extra`
    /// configures all three.
    pub(crate) async fn start_with(redis: &str, extra: &[(&str, &str)]) -> Self {
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let mut common = vec![
            ("REDIS_URL", redis),
            ("TASKLIGHT_REDIS_KEY_PREFIX", prefix.as_str()),
            ("TASKLIGHT_CACHE_L1_TTL_MS", "60000"),
        ];
        common.extend_from_slice(extra);
        let a = spawn_app_with(&common).await;
        let mut others = Vec::new();
        for name in ["test-instance-b", "test-instance-c"] {
            let mut vars = base_config(a.db.url(), name);
            vars.extend(common.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let config = tasklight::config::Config::from_map(&vars).expect("configuration");
            assert_ne!(INSTANCE_ID, name);
            others.push(
                tasklight::server::start(config)
                    .await
                    .expect("instance starts"),
            );
        }
        Self {
            a,
            others,
            client: crate::helpers::http_client(),
            prefix,
        }
    }

    /// The HTTP client the cluster's helpers use.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub(crate) fn addr(&self, i: usize) -> std::net::SocketAddr {
        if i == 0 {
            self.a.addr
        } else {
            self.others[i - 1].addr
        }
    }

    fn admin_addr(&self, i: usize) -> std::net::SocketAddr {
        if i == 0 {
            self.a.server.admin_addr
        } else {
            self.others[i - 1].admin_addr
        }
    }

    pub(crate) async fn get_on(&self, i: usize, path: &str, token: &str) -> reqwest::StatusCode {
        self.client
            .get(format!("http://{}/api/v1{path}", self.addr(i)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The JSON that instance `i` answers for `path`.
    async fn json_on(&self, i: usize, path: &str, token: &str) -> Value {
        self.client
            .get(format!("http://{}/api/v1{path}", self.addr(i)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The string `field` of the JSON that instance `i` answers for `path`.
    async fn field_on(&self, i: usize, path: &str, token: &str, field: &str) -> String {
        let body = self.json_on(i, path, token).await;
        body[field].as_str().unwrap().to_owned()
    }

    /// Polls B and C (at most 3 s) until `field` of their answer for `path` is `expected`, and
    /// asserts that both got there within a second of the call; `what` names the change.
    async fn assert_others_show_within_a_second(
        &self,
        path: &str,
        token: &str,
        field: &str,
        expected: &str,
        what: &str,
    ) {
        let started = Instant::now();
        let mut seen = [None, None];
        while started.elapsed() < Duration::from_secs(3) && seen.iter().any(Option::is_none) {
            for i in [1, 2] {
                if seen[i - 1].is_none() && self.field_on(i, path, token, field).await == expected {
                    seen[i - 1] = Some(started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!(
            "[measured] {what}: B after {:?}, C after {:?}",
            seen[0], seen[1]
        );
        for (i, took) in seen.iter().enumerate() {
            let took = took.unwrap_or_else(|| panic!("{} never served the {what}", NAMES[i + 1]));
            assert!(
                took < Duration::from_secs(1),
                "{} took {took:?}",
                NAMES[i + 1]
            );
        }
    }

    async fn get_on_b(&self, path: &str, token: &str) -> reqwest::StatusCode {
        self.get_on(1, path, token).await
    }

    async fn metrics(&self, i: usize) -> String {
        self.client
            .get(format!("http://{}/metrics", self.admin_addr(i)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn b_metrics(&self) -> String {
        self.metrics(1).await
    }

    async fn ready(&self, i: usize) -> Value {
        self.client
            .get(format!("http://{}/health/ready", self.admin_addr(i)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls `path` on instance `i` until it answers `status`; returns how long that took (at
    /// most 3 s).
    pub(crate) async fn time_until_answers(
        &self,
        i: usize,
        path: &str,
        token: &str,
        status: u16,
    ) -> Duration {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if self.get_on(i, path, token).await.as_u16() == status {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "instance {} still did not answer {status} for {path} after 3 s",
            NAMES[i]
        );
    }

    async fn time_until_b_answers(&self, path: &str, token: &str, status: u16) -> Duration {
        self.time_until_answers(1, path, token, status).await
    }

    /// Asserts that B and C answer `status` for `path` within one second (what "every instance
    /// within a second" promises); `what` says what they would otherwise have kept serving.
    async fn assert_others_answer_within_a_second(
        &self,
        path: &str,
        token: &str,
        status: u16,
        what: &str,
    ) {
        let started = Instant::now();
        let (b, c) = tokio::join!(
            self.time_until_answers(1, path, token, status),
            self.time_until_answers(2, path, token, status)
        );
        eprintln!("[measured] {what}: B saw the change after {b:?}, C after {c:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: B for {b:?}, C for {c:?}"
        );
    }

    pub(crate) async fn stop(self) {
        for server in self.others {
            server.stop().await;
        }
        self.a.stop().await;
    }
}

fn sample(metrics: &str, series: &str) -> f64 {
    crate::telemetry::process::sample(metrics, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_works_on_b_and_c_and_logout_on_a_is_refused_on_both_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let user = cluster.a.user().await;
    for i in [1, 2, 1, 2] {
        // The second round is answered from B's and C's in-process caches (TTL one minute).
        assert_eq!(cluster.get_on(i, "/users/me", &user.access).await, 200);
    }

    let logout = cluster
        .a
        .post("/auth/logout", Some(&user.access), &json!({}))
        .await;
    assert_eq!(logout.status(), 204);
    cluster
        .assert_others_answer_within_a_second("/users/me", &user.access, 401, "logout")
        .await;

    let metrics = cluster.b_metrics().await;
    assert!(
        sample(
            &metrics,
            "tasklight_cache_invalidations_total{direction=\"received\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &metrics,
            "tasklight_cache_requests_total{cache=\"session\",layer=\"l1\",result=\"hit\"}"
        ) >= 1.0
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_loaded_b_finds_in_redis_and_a_removed_member_loses_access_on_b_and_c_within_a_second()
 {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let team = cluster.a.team().await;
    let task = format!("/tasks/{}", team.task_id);
    // Adding the member left a tombstone on their role's key, which keeps loads from storing
    // into Redis for two seconds (so a load racing a write cannot store a stale value); wait
    // for it to expire.
    let key = format!(
        "{}:cache:member:{}:{}",
        cluster.prefix, team.project_id, team.member.id
    );
    let mut redis_conn = redis::Client::open(redis.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut redis_conn)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the tombstone stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The member reads the task on A first: A loads the role from the database into Redis.
    assert_eq!(
        cluster
            .a
            .get(&task, Some(&team.member.access))
            .await
            .status(),
        200
    );
    let before = cluster.b_metrics().await;
    assert_eq!(cluster.get_on_b(&task, &team.member.access).await, 200);
    assert_eq!(cluster.get_on(2, &task, &team.member.access).await, 200);
    let after = cluster.b_metrics().await;
    let l2_hits = |m: &str| {
        sample(
            m,
            "tasklight_cache_requests_total{cache=\"member\",layer=\"l2\",result=\"hit\"}",
        )
    };
    assert_eq!(
        l2_hits(&after) - l2_hits(&before),
        1.0,
        "B found A's entry in Redis"
    );

    cluster
        .a
        .remove_member(&team.owner.access, &team.project_id, &team.member.id)
        .await;
    cluster
        .assert_others_answer_within_a_second(&task, &team.member.access, 404, "member removal")
        .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_on_a_is_refused_on_b_and_c_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let admin = cluster.a.admin().await;
    let user = cluster.a.user().await;
    assert_eq!(cluster.get_on_b("/users/me", &user.access).await, 200);
    assert_eq!(cluster.get_on(2, "/users/me", &user.access).await, 200);
    let disabled = cluster
        .a
        .patch(
            &format!("/admin/users/{}", user.id),
            Some(&admin.access),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    cluster
        .assert_others_answer_within_a_second("/users/me", &user.access, 401, "user disabled")
        .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_change_on_a_is_what_b_and_c_answer_for_users_me_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let user = cluster.a.user().await;
    // B and C keep the profile in process (it is the entry the bearer check reads).
    for i in [1, 2, 1, 2] {
        let name = cluster
            .field_on(i, "/users/me", &user.access, "display_name")
            .await;
        assert_ne!(name, "Renamed on A");
    }
    let renamed = cluster
        .a
        .patch(
            "/users/me",
            Some(&user.access),
            &json!({"display_name": "Renamed on A"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    cluster
        .assert_others_show_within_a_second(
            "/users/me",
            &user.access,
            "display_name",
            "Renamed on A",
            "profile change",
        )
        .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_invalidation_subscription_drops_b_flushes_its_in_process_cache() {
    let Some(redis_url) = redis_url() else { return };
    let cluster = Cluster::start(&redis_url).await;
    let team = cluster.a.team().await;
    let task = format!("/tasks/{}", team.task_id);
    assert_eq!(cluster.get_on_b(&task, &team.member.access).await, 200);

    // The membership disappears without any invalidation message (as if it had been lost):
    // straight from the database and from Redis, behind the service's back.
    let (project, member): (uuid::Uuid, uuid::Uuid) = (
        team.project_id.parse().unwrap(),
        team.member.id.parse().unwrap(),
    );
    // The service's own storage layer, which knows nothing of the cache.
    let mut store = cluster.a.server.state.domain.read().await.unwrap();
    store.delete_member(project, member).await.unwrap();
    drop(store);
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:cache:member:{project}:{member}", cluster.prefix);
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        cluster.get_on_b(&task, &team.member.access).await,
        200,
        "B answers from its in-process cache (TTL one minute)"
    );

    // The subscription drops; when B is subscribed again it must flush what it may have missed.
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis)
        .await
        .unwrap();
    let took = cluster
        .time_until_b_answers(&task, &team.member.access, 404)
        .await;
    assert!(
        took < Duration::from_secs(3),
        "B flushed only after {took:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_and_c_serve_a_task_updated_through_a_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let team = cluster.a.team().await;
    let task = format!("/tasks/{}", team.task_id);
    let token = &team.member.access;
    // B and C cache the task (and the member's role) in process.
    for i in [1, 2, 1, 2] {
        assert_ne!(
            cluster.field_on(i, &task, token, "title").await,
            "Renamed on A"
        );
    }
    for i in [1, 2] {
        let metrics = cluster.metrics(i).await;
        assert!(
            sample(
                &metrics,
                "tasklight_cache_requests_total{cache=\"task\",layer=\"l1\",result=\"hit\"}"
            ) >= 1.0,
            "{} did not answer from its in-process cache",
            NAMES[i]
        );
    }
    let updated = cluster
        .a
        .patch(
            &task,
            Some(&team.owner.access),
            &json!({"title": "Renamed on A"}),
        )
        .await;
    assert_eq!(updated.status(), 200);
    cluster
        .assert_others_show_within_a_second(&task, token, "title", "Renamed on A", "task update")
        .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_on_a_loses_the_projects_tasks_from_my_tasks_on_b_and_c_at_once() {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let team = cluster.a.team().await;
    let created = cluster
        .a
        .create_task(
            &team.member.access,
            &team.project_id,
            json!({"title": "The member's own"}),
        )
        .await;
    let count_on = |i: usize| {
        let (cluster, token) = (&cluster, &team.member.access);
        async move {
            let page = cluster.json_on(i, "/tasks", token).await;
            page["items"].as_array().unwrap().len()
        }
    };
    // B and C list it (and have the member's role cached from other reads).
    for i in [1, 2] {
        assert_eq!(count_on(i).await, 1);
        let task = format!("/tasks/{}", created["id"].as_str().unwrap());
        assert_eq!(cluster.get_on(i, &task, &team.member.access).await, 200);
    }
    cluster
        .a
        .remove_member(&team.owner.access, &team.project_id, &team.member.id)
        .await;
    // Membership is read in the list's own statement: no wait for any cache.
    for i in [1, 2] {
        assert_eq!(count_on(i).await, 0, "{} still lists it", NAMES[i]);
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_quota_is_shared_by_all_instances_not_multiplied_by_them() {
    let Some(redis) = redis_url() else { return };
    // 20 per 2 s with a burst of 5: over 2 s at most 20 + 5 may pass, on however many instances.
    let cluster =
        Cluster::start_with(&redis, &[("TASKLIGHT_RATE_LIMIT_USER", "20/2s,burst=5")]).await;
    let user = cluster.a.user().await;
    let started = Instant::now();
    let (mut allowed, mut limited, mut sent) = (0u32, 0u32, 0usize);
    let mut refusal = None;
    while started.elapsed() < Duration::from_secs(2) {
        let response = cluster
            .client
            .get(format!("http://{}/api/v1/users/me", cluster.addr(sent % 3)))
            .bearer_auth(&user.access)
            .send()
            .await
            .unwrap();
        sent += 1;
        match response.status().as_u16() {
            200 => allowed += 1,
            429 => {
                limited += 1;
                refusal.get_or_insert(response);
            }
            other => panic!("unexpected {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let entitled = 5.0 + 20.0 * elapsed / 2.0;
    eprintln!(
        "[measured] shared quota: {sent} requests round-robin over 3 instances in {elapsed:.2} s: \
         {allowed} allowed, {limited} limited; entitled {entitled:.1} (burst 5 + 10/s); \
         overshoot {:.1}",
        f64::from(allowed) - entitled
    );
    assert!(limited > 0, "nothing was limited ({sent} requests)");
    // At most one request of slack for the clock tick between the last check and `elapsed`.
    assert!(
        f64::from(allowed) <= entitled + 1.0,
        "{allowed} allowed, entitled to {entitled:.1}: the instances did not share the quota"
    );
    assert!(
        f64::from(allowed) >= 20.0,
        "only {allowed} allowed: over-limiting"
    );
    let refusal = refusal.unwrap();
    for name in ["retry-after", "ratelimit-policy", "ratelimit"] {
        assert!(refusal.headers().contains_key(name), "429 without {name}");
    }
    assert_eq!(refusal.headers()["ratelimit-policy"], "\"user\";q=20;w=2");
    let mut decisions = 0.0;
    for (i, name) in NAMES.iter().enumerate() {
        let metrics = cluster.metrics(i).await;
        decisions += sample(
            &metrics,
            "tasklight_rate_limit_decisions_total{policy=\"user\",result=\"limited\"}",
        );
        assert_eq!(
            sample(
                &metrics,
                "tasklight_rate_limit_fallback_decisions_total{policy=\"user\"}"
            ),
            0.0,
            "instance {} fell back while Redis was up",
            name
        );
    }
    assert_eq!(decisions, f64::from(limited));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_creates_one_task_whichever_instances_receive_it() {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let user = cluster.a.user().await;
    let project = cluster.a.create_project(&user.access, "Keys").await;
    let tasks = format!("/api/v1/projects/{}/tasks", project["id"].as_str().unwrap());
    let post = |i: usize, key: &'static str| {
        let request = cluster
            .client
            .post(format!("http://{}{tasks}", cluster.addr(i)))
            .bearer_auth(&user.access)
            .header("Idempotency-Key", key)
            .json(&json!({"title": "exactly once"}));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Sent to A, then retried on B.
    let on_a = post(0, "sequential").await;
    let on_b = post(1, "sequential").await;
    assert_eq!(on_a.0, 201);
    assert_eq!(on_b, on_a);
    // Sent to A, B and C at once, twice each.
    let racing = futures::future::join_all((0..6).map(|n| post(n % 3, "concurrent"))).await;
    for answer in &racing {
        assert_eq!(answer.0, 201, "{}", answer.1);
        assert_eq!(answer, &racing[0]);
    }
    let list: Value = cluster
        .a
        .get(&tasks, Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    cluster.stop().await;
}

/// A `redis-server` of the test's own, on its own port, so that it can be stopped.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is on the PATH (Debian package redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_instances_keep_answering_and_recover_when_it_returns() {
    if redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let cluster =
        Cluster::start_with(&redis.url(), &[("TASKLIGHT_RATE_LIMIT_LOCAL_SHARE", "0.5")]).await;
    let team = cluster.a.team().await;
    let task = format!("/tasks/{}", team.task_id);
    for i in 0..3 {
        assert_eq!(cluster.ready(i).await["checks"]["redis"]["status"], "up");
    }

    redis.stop();
    let outage = Instant::now();
    // Every instance keeps answering reads and writes: cache bypassed, limits in-process.
    for i in 0..3 {
        assert_eq!(cluster.get_on(i, &task, &team.member.access).await, 200);
        assert_eq!(
            cluster.get_on(i, "/users/me", &team.owner.access).await,
            200
        );
    }
    let write = cluster
        .a
        .patch(
            &task,
            Some(&team.owner.access),
            &json!({"title": "During the outage"}),
        )
        .await;
    assert_eq!(write.status(), 200);
    eprintln!(
        "[measured] Redis outage: 6 reads and a write answered in {:?}",
        outage.elapsed()
    );
    for (i, name) in NAMES.iter().enumerate() {
        let ready = cluster.ready(i).await;
        assert_eq!(ready["status"], "degraded", "{ready}");
        assert_eq!(ready["checks"]["redis"]["status"], "down");
        assert_eq!(ready["checks"]["database"]["status"], "up");
        let metrics = cluster.metrics(i).await;
        assert!(
            sample(
                &metrics,
                "tasklight_rate_limit_fallback_decisions_total{policy=\"user\"}"
            ) >= 1.0,
            "instance {} did not count its fallback decisions",
            name
        );
        assert_eq!(
            sample(&metrics, "tasklight_rate_limit_fallback_active"),
            1.0
        );
    }

    redis.restart();
    // No restart of the instances: readiness, limits and invalidation come back on their own.
    let back = Instant::now();
    for (i, name) in NAMES.iter().enumerate() {
        loop {
            let ready = cluster.ready(i).await;
            if ready["status"] == "ready" {
                break;
            }
            assert!(back.elapsed() < Duration::from_secs(5), "{ready}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            cluster.get_on(i, "/users/me", &team.owner.access).await,
            200
        );
        let metrics = cluster.metrics(i).await;
        assert_eq!(
            sample(&metrics, "tasklight_rate_limit_fallback_active"),
            0.0,
            "instance {} still limits in-process",
            name
        );
    }
    eprintln!(
        "[measured] Redis back: all three ready after {:?}",
        back.elapsed()
    );
    // The subscriptions are back too (each flushed its in-process cache when it resubscribed):
    // a change on A reaches B and C within a second again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for i in [1, 2] {
        assert_eq!(cluster.get_on(i, &task, &team.member.access).await, 200);
    }
    cluster
        .a
        .remove_member(&team.owner.access, &team.project_id, &team.member.id)
        .await;
    cluster
        .assert_others_answer_within_a_second(
            &task,
            &team.member.access,
            404,
            "member removal after Redis returned",
        )
        .await;
    cluster.stop().await;
}

/// The comment count and the ETag of a task as instance `i` serves it.
async fn comment_count_on(cluster: &Cluster, i: usize, task: &str, token: &str) -> (i64, String) {
    let resp = cluster
        .client
        .get(format!("http://{}/api/v1{task}", cluster.addr(i)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    (body["comment_count"].as_i64().unwrap(), etag)
}

/// Polls instances A and C (at most 3 s) until they serve `expected` for the task; asserts that
/// both did within a second.
async fn assert_a_and_c_count_within_a_second(
    cluster: &Cluster,
    task: &str,
    token: &str,
    expected: (i64, &str),
) {
    let started = Instant::now();
    let mut seen = [None, None];
    while started.elapsed() < Duration::from_secs(3) && seen.iter().any(Option::is_none) {
        for (slot, i) in [0, 2].into_iter().enumerate() {
            if seen[slot].is_none() {
                let (count, etag) = comment_count_on(cluster, i, task, token).await;
                if count == expected.0 && etag == expected.1 {
                    seen[slot] = Some(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "[measured] comment count {}: A after {:?}, C after {:?}",
        expected.0, seen[0], seen[1]
    );
    for (slot, i) in [0, 2].into_iter().enumerate() {
        let took = seen[slot].unwrap_or_else(|| panic!("{} never served {expected:?}", NAMES[i]));
        assert!(took < Duration::from_secs(1), "{} took {took:?}", NAMES[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_written_on_b_changes_the_count_and_etag_a_and_c_serve_within_a_second() {
    let Some(redis) = redis_url() else { return };
    let cluster = Cluster::start(&redis).await;
    let team = cluster.a.team().await;
    let task = format!("/tasks/{}", team.task_id);
    let token = &team.member.access;
    // A and C hold the task (no comments, version 1) in their in-process caches.
    for i in [0, 2, 0, 2] {
        assert_eq!(
            comment_count_on(&cluster, i, &task, token).await,
            (0, "\"v1\"".to_owned())
        );
    }
    let written = cluster
        .client
        .post(format!("http://{}/api/v1{task}/comments", cluster.addr(1)))
        .bearer_auth(token)
        .json(&json!({"body": "written on B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 201);
    let comment: Value = written.json().await.unwrap();
    assert_a_and_c_count_within_a_second(&cluster, &task, token, (1, "\"v2\"")).await;
    // And back down when B deletes it.
    let deleted = cluster
        .client
        .delete(format!(
            "http://{}/api/v1/comments/{}",
            cluster.addr(1),
            comment["id"].as_str().unwrap()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_a_and_c_count_within_a_second(&cluster, &task, token, (0, "\"v3\"")).await;
    cluster.stop().await;
}
