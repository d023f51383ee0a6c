//! Prometheus metrics of one app instance, served on the admin listener at `/metrics`.
//!
//! Each app owns its recorder (no process-global state), and every handle on the hot path is
//! created once: fixed ones at start-up, per-route HTTP histograms on first use and cached.
//! Labels only take values the server chose: route templates (or `unmatched`), known methods
//! (or `_OTHER`), status codes, operation names.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::Ordering;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::telemetry::{DROPPED_LOG_LINES, DROPPED_SPANS};

/// OpenTelemetry's recommended buckets for `http.server.request.duration`.
pub const HTTP_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const DB_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const DB_OPERATIONS: [&str; 6] = ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "OTHER"];
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT",
];

/// The method as a label or span name: a standard method, or `_OTHER` (the client chose it).
pub fn known_method(method: &str) -> &'static str {
    METHODS
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or("_OTHER")
}

static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

/// Query durations by operation.
pub struct DbMetrics {
    by_operation: Vec<(&'static str, Histogram)>,
}

impl DbMetrics {
    /// Records one query.
    pub fn record(&self, operation: &str, seconds: f64) {
        if let Some((_, h)) = self.by_operation.iter().find(|(op, _)| *op == operation) {
            h.record(seconds);
        }
    }
}

/// Authentication events.
pub struct AuthMetrics {
    /// Successful logins.
    pub login_success: Counter,
    /// Failed logins (wrong email or password, disabled account).
    pub login_failure: Counter,
    /// Successful refreshes.
    pub refresh: Counter,
    /// Refresh-token reuse detected (session revoked).
    pub reuse_detected: Counter,
}

/// Task changes.
pub struct TaskMetrics {
    /// Tasks created.
    pub created: Counter,
    /// Tasks updated.
    pub updated: Counter,
    /// Tasks deleted.
    pub deleted: Counter,
}

/// Buckets of event fan-out latency (commit to feed, commit to stream).
const FANOUT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Why an event stream ended, as metric labels.
pub const STREAM_END_REASONS: [&str; 6] = [
    "client_gone",
    "drain",
    "membership_ended",
    "session_ended",
    "project_deleted",
    "error",
];

/// The outbox's readers: this instance's feed and its event streams.
pub struct EventMetrics {
    read: Histogram,
    sent: Histogram,
    /// Event streams open on this instance.
    pub streams_open: Gauge,
    /// Streams opened.
    pub streams_opened: Counter,
    /// Streams refused because the user holds the most allowed.
    pub streams_refused: Counter,
    ended: Vec<Counter>,
}

impl EventMetrics {
    /// The feed read an event `seconds` after it happened.
    pub fn read(&self, seconds: f64) {
        self.read.record(seconds);
    }

    /// A stream was handed an event `seconds` after it happened.
    pub fn sent(&self, seconds: f64) {
        self.sent.record(seconds);
    }

    /// A stream ended for `reason` (one of [`STREAM_END_REASONS`]).
    pub fn stream_ended(&self, reason: &str) {
        let i = STREAM_END_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(STREAM_END_REASONS.len() - 1);
        self.ended[i].increment(1);
    }

    fn register(r: &Registrar<'_>) -> Self {
        let fanout = |stage| r.histogram("tasklight_event_fanout_seconds", &[("stage", stage)]);
        Self {
            read: fanout("read"),
            sent: fanout("sent"),
            streams_open: r.gauge("tasklight_event_streams_open", &[]),
            streams_opened: r.counter("tasklight_event_streams_opened_total", &[]),
            streams_refused: r.counter("tasklight_event_streams_refused_total", &[]),
            ended: STREAM_END_REASONS
                .iter()
                .map(|reason| {
                    r.counter("tasklight_event_streams_ended_total", &[("reason", reason)])
                })
                .collect(),
        }
    }
}

/// Webhook delivery.
pub struct WebhookMetrics {
    results: [Counter; 3],
    attempt: Histogram,
    outbox_lag: Gauge,
    pending: Gauge,
    dead: Gauge,
    open_circuits: Gauge,
}

impl WebhookMetrics {
    /// Counts an attempt's outcome: `delivered`, `failed` (will be retried) or `dead`.
    pub fn result(&self, result: &str) {
        let i = match result {
            "delivered" => 0,
            "failed" => 1,
            _ => 2,
        };
        self.results[i].increment(1);
    }

    /// Records an attempt's duration.
    pub fn attempt(&self, seconds: f64) {
        self.attempt.record(seconds);
    }

    /// Sets the cluster-wide delivery gauges (every instance reads the same database: take
    /// `max` across instances, not `sum`).
    pub fn set_counts(&self, lag_seconds: f64, pending: i64, dead: i64, open_circuits: i64) {
        self.outbox_lag.set(lag_seconds);
        self.pending.set(pending as f64);
        self.dead.set(dead as f64);
        self.open_circuits.set(open_circuits as f64);
    }

    fn register(r: &Registrar<'_>) -> Self {
        let result =
            |result| r.counter("tasklight_webhook_deliveries_total", &[("result", result)]);
        Self {
            results: [result("delivered"), result("failed"), result("dead")],
            attempt: r.histogram("tasklight_webhook_attempt_duration_seconds", &[]),
            outbox_lag: r.gauge("tasklight_outbox_lag_seconds", &[]),
            pending: r.gauge("tasklight_webhook_deliveries_pending", &[]),
            dead: r.gauge("tasklight_webhook_dead_letters", &[]),
            open_circuits: r.gauge("tasklight_webhook_circuits_open", &[]),
        }
    }
}

/// Rows deleted by housekeeping, by kind.
pub struct HousekeepingMetrics {
    deleted: [Counter; HOUSEKEEPING_ROWS.len()],
}

/// The kinds of rows housekeeping deletes (the `rows` label).
pub const HOUSEKEEPING_ROWS: [&str; 5] = [
    "idempotency_keys",
    "sessions",
    "verification_tokens",
    "invitations",
    "webhook_deliveries",
];

impl HousekeepingMetrics {
    /// Counts `n` deleted rows of `rows` (one of [`HOUSEKEEPING_ROWS`]).
    pub fn deleted(&self, rows: &str, n: u64) {
        if let Some(i) = HOUSEKEEPING_ROWS.iter().position(|r| *r == rows) {
            self.deleted[i].increment(n);
        }
    }

    fn register(r: &Registrar<'_>) -> Self {
        Self {
            deleted: HOUSEKEEPING_ROWS
                .map(|rows| r.counter("tasklight_housekeeping_deleted_total", &[("rows", rows)])),
        }
    }
}

/// Where reads that may be stale went, and the replica's state.
pub struct ReplicaMetrics {
    /// `target="replica"` with `reason="replica"`, then `target="primary"` with `own_write`,
    /// `lagging` and `down`.
    reads: [Counter; 4],
    up: Gauge,
    lag: Gauge,
}

/// The reasons a stale-tolerant read went where it went, as metric labels.
pub const REPLICA_READ_REASONS: [&str; 4] = ["replica", "own_write", "lagging", "down"];

impl ReplicaMetrics {
    /// Counts a read by its reason (one of [`REPLICA_READ_REASONS`]).
    pub fn read(&self, reason: usize) {
        self.reads[reason.min(3)].increment(1);
    }

    /// Sets whether the replica answers and how far behind it is.
    pub fn set_state(&self, up: bool, lag_seconds: f64) {
        self.up.set(if up { 1.0 } else { 0.0 });
        self.lag.set(lag_seconds);
    }

    fn register(r: &Registrar<'_>) -> Self {
        let read = |i: usize| {
            let target = if i == 0 { "replica" } else { "primary" };
            r.counter(
                "tasklight_db_reads_total",
                &[("target", target), ("reason", REPLICA_READ_REASONS[i])],
            )
        };
        Self {
            reads: [read(0), read(1), read(2), read(3)],
            up: r.gauge("tasklight_db_replica_up", &[]),
            lag: r.gauge("tasklight_db_replica_lag_seconds", &[]),
        }
    }
}

/// The rate-limit policies, as metric labels.
pub const RATE_LIMIT_POLICIES: [&str; 4] = ["user", "ip", "auth-ip", "auth-account"];

/// Rate-limit decisions and fallbacks.
pub struct RateLimitMetrics {
    /// Per policy (in [`RATE_LIMIT_POLICIES`] order): allowed, limited, decided in-process.
    by_policy: Vec<[Counter; 3]>,
    /// 1 while decisions are made in-process because Redis is unreachable.
    pub fallback_active: Gauge,
}

impl RateLimitMetrics {
    /// Counts one decision; `local` when the in-process fallback made it.
    pub fn decision(&self, policy: &str, allowed: bool, local: bool) {
        if let Some(i) = RATE_LIMIT_POLICIES.iter().position(|p| *p == policy) {
            let [allowed_total, limited_total, fallback_total] = &self.by_policy[i];
            if allowed {
                allowed_total.increment(1);
            } else {
                limited_total.increment(1);
            }
            if local {
                fallback_total.increment(1);
            }
        }
    }
}

/// Database pool occupancy, read at scrape time (plain numbers: telemetry knows no database).
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Largest allowed.
    pub max: u32,
}

/// Database pool state, set at scrape time.
struct PoolGauges {
    used: Gauge,
    idle: Gauge,
    max: Gauge,
}

/// Process state, set at scrape time. (`process_cpu_seconds_total` is a counter of fractional
/// seconds, which the recorder's integer counters cannot hold: [`Metrics::render`] writes it.)
struct ProcessGauges {
    resident_bytes: Gauge,
    open_fds: Gauge,
    start_time: Gauge,
}

/// All metrics of one app.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    http: RwLock<HashMap<(&'static str, &'static str, u16), Histogram>>,
    cache: RwLock<HashMap<(&'static str, &'static str, &'static str), Counter>>,
    cache_invalidations_sent: Counter,
    cache_invalidations_received: Counter,
    tasklight_cache_l1_entries: Gauge,
    /// Requests being served now.
    pub active_requests: Gauge,
    /// Query durations.
    pub db: DbMetrics,
    /// Authentication events.
    pub auth: AuthMetrics,
    /// Task changes.
    pub tasks: TaskMetrics,
    /// Rate-limit decisions.
    pub rate_limits: RateLimitMetrics,
    /// The event feed and streams.
    pub events: EventMetrics,
    /// Webhook delivery.
    pub webhooks: WebhookMetrics,
    /// Reads sent to the replica or the primary (`DATABASE_READ_URL`).
    pub replica: ReplicaMetrics,
    /// Rows housekeeping deleted.
    pub housekeeping: HousekeepingMetrics,
    pool: PoolGauges,
    process: ProcessGauges,
    dropped_logs: Counter,
    dropped_spans: Counter,
}

impl Metrics {
    /// Builds the recorder and the fixed handles; `tasklight_build_info` is set to 1.
    pub fn new(instance_id: &str) -> Self {
        let recorder = build_recorder();
        let handle = recorder.handle();
        describe(&recorder);
        let r = Registrar(&recorder);
        r.build_info(instance_id);
        Self {
            http: RwLock::new(HashMap::new()),
            cache: RwLock::new(HashMap::new()),
            cache_invalidations_sent: r.counter(
                "tasklight_cache_invalidations_total",
                &[("direction", "sent")],
            ),
            cache_invalidations_received: r.counter(
                "tasklight_cache_invalidations_total",
                &[("direction", "received")],
            ),
            tasklight_cache_l1_entries: r.gauge("tasklight_cache_l1_entries", &[]),
            active_requests: r.gauge("http_server_active_requests", &[]),
            db: DbMetrics::register(&r),
            auth: AuthMetrics::register(&r),
            tasks: TaskMetrics::register(&r),
            rate_limits: RateLimitMetrics::register(&r),
            events: EventMetrics::register(&r),
            webhooks: WebhookMetrics::register(&r),
            replica: ReplicaMetrics::register(&r),
            housekeeping: HousekeepingMetrics::register(&r),
            pool: PoolGauges::register(&r),
            process: ProcessGauges::register(&r),
            dropped_logs: r.counter("tasklight_telemetry_dropped_total", &[("signal", "logs")]),
            dropped_spans: r.counter("tasklight_telemetry_dropped_total", &[("signal", "spans")]),
            handle,
            recorder,
        }
    }

    /// Records one served request.
    pub fn record_request(&self, method: &str, route: &'static str, status: u16, seconds: f64) {
        let method = known_method(method);
        let cache_key = (method, route, status);
        if let Some(h) = self
            .http
            .read()
            .ok()
            .and_then(|m| m.get(&cache_key).cloned())
        {
            h.record(seconds);
            return;
        }
        let key = Key::from_parts(
            "http_server_request_duration_seconds",
            vec![
                Label::new("method", method),
                Label::new("route", route),
                Label::new("status_code", status.to_string()),
            ],
        );
        let histogram = self.recorder.register_histogram(&key, &META);
        histogram.record(seconds);
        if let Ok(mut map) = self.http.write() {
            map.insert(cache_key, histogram);
        }
    }

    /// Counts one cache lookup at one layer (`l1`, `l2`) with its result (`hit`, `miss`,
    /// `error`).
    pub fn cache_request(&self, cache: &'static str, layer: &'static str, result: &'static str) {
        let cache_key = (cache, layer, result);
        if let Some(c) = self
            .cache
            .read()
            .ok()
            .and_then(|m| m.get(&cache_key).cloned())
        {
            c.increment(1);
            return;
        }
        let counter = self.recorder.register_counter(
            &key(
                "tasklight_cache_requests_total",
                &[("cache", cache), ("layer", layer), ("result", result)],
            ),
            &META,
        );
        counter.increment(1);
        if let Ok(mut map) = self.cache.write() {
            map.insert(cache_key, counter);
        }
    }

    /// Counts cache invalidations `sent` to or `received` from other instances.
    pub fn cache_invalidations(&self, direction: &str, count: u64) {
        match direction {
            "sent" => self.cache_invalidations_sent.increment(count),
            _ => self.cache_invalidations_received.increment(count),
        }
    }

    /// Renders the Prometheus text, after refreshing scrape-time values.
    pub fn render(&self, pool: PoolStats, cache_entries: u64) -> String {
        self.tasklight_cache_l1_entries.set(cache_entries as f64);
        self.pool.used.set(f64::from(pool.size - pool.idle));
        self.pool.idle.set(f64::from(pool.idle));
        self.pool.max.set(f64::from(pool.max));
        self.dropped_logs
            .absolute(DROPPED_LOG_LINES.load(Ordering::Relaxed));
        self.dropped_spans
            .absolute(DROPPED_SPANS.load(Ordering::Relaxed));
        let process = super::process::read();
        self.process
            .resident_bytes
            .set(process.resident_bytes as f64);
        self.process.open_fds.set(process.open_fds as f64);
        self.process.start_time.set(process.start_time_seconds);
        self.handle.run_upkeep();
        let mut text = self.handle.render();
        render_cpu_seconds(&mut text, process.cpu_seconds);
        text
    }
}

/// The Prometheus recorder with histogram buckets for request and query durations.
fn build_recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_server_request_duration_seconds".into()),
            &HTTP_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("db_client_operation_duration_seconds".into()),
                &DB_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("tasklight_event_fanout_seconds".into()),
                &FANOUT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("tasklight_webhook_attempt_duration_seconds".into()),
                &HTTP_BUCKETS,
            )
        })
        .expect("bucket lists are not empty")
        .build_recorder()
}

/// Registers metric handles on one recorder.
struct Registrar<'a>(&'a PrometheusRecorder);

impl Registrar<'_> {
    fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.0.register_counter(&key(name, labels), &META)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.0.register_gauge(&key(name, labels), &META)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Histogram {
        self.0.register_histogram(&key(name, labels), &META)
    }

    /// `tasklight_build_info{version, instance_id} 1`.
    fn build_info(&self, instance_id: &str) {
        let labels = vec![
            Label::new("version", env!("CARGO_PKG_VERSION")),
            Label::new("instance_id", instance_id.to_owned()),
        ];
        let key = Key::from_parts("tasklight_build_info", labels);
        self.0.register_gauge(&key, &META).set(1.0);
    }
}

impl DbMetrics {
    fn register(r: &Registrar<'_>) -> Self {
        let by_operation = DB_OPERATIONS
            .iter()
            .map(|&op| {
                let histogram =
                    r.histogram("db_client_operation_duration_seconds", &[("operation", op)]);
                (op, histogram)
            })
            .collect();
        Self { by_operation }
    }
}

impl AuthMetrics {
    fn register(r: &Registrar<'_>) -> Self {
        let event = |event| r.counter("tasklight_auth_events_total", &[("event", event)]);
        Self {
            login_success: event("login_success"),
            login_failure: event("login_failure"),
            refresh: event("refresh"),
            reuse_detected: event("reuse_detected"),
        }
    }
}

impl TaskMetrics {
    fn register(r: &Registrar<'_>) -> Self {
        let change = |change| r.counter("tasklight_task_changes_total", &[("change", change)]);
        Self {
            created: change("created"),
            updated: change("updated"),
            deleted: change("deleted"),
        }
    }
}

impl RateLimitMetrics {
    fn register(r: &Registrar<'_>) -> Self {
        let decisions = |policy, result| {
            r.counter(
                "tasklight_rate_limit_decisions_total",
                &[("policy", policy), ("result", result)],
            )
        };
        let by_policy = RATE_LIMIT_POLICIES
            .iter()
            .map(|&policy| {
                [
                    decisions(policy, "allowed"),
                    decisions(policy, "limited"),
                    r.counter(
                        "tasklight_rate_limit_fallback_decisions_total",
                        &[("policy", policy)],
                    ),
                ]
            })
            .collect();
        Self {
            by_policy,
            fallback_active: r.gauge("tasklight_rate_limit_fallback_active", &[]),
        }
    }
}

impl PoolGauges {
    fn register(r: &Registrar<'_>) -> Self {
        Self {
            used: r.gauge("db_client_connections", &[("state", "used")]),
            idle: r.gauge("db_client_connections", &[("state", "idle")]),
            max: r.gauge("db_client_connections_max", &[]),
        }
    }
}

impl ProcessGauges {
    fn register(r: &Registrar<'_>) -> Self {
        Self {
            resident_bytes: r.gauge("process_resident_memory_bytes", &[]),
            open_fds: r.gauge("process_open_fds", &[]),
            start_time: r.gauge("process_start_time_seconds", &[]),
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, *v))
            .collect::<Vec<_>>(),
    )
}

/// What kind of metric a description is for.
#[derive(Clone, Copy)]
enum MetricKind {
    Counter,
    Gauge,
    /// Histograms here all measure seconds.
    SecondsHistogram,
}

/// The `# HELP` text of every metric family.
const DESCRIPTIONS: [(MetricKind, &str, &str); 33] = [
    (
        MetricKind::Counter,
        "tasklight_webhook_deliveries_total",
        "Webhook delivery attempts by result: delivered, failed (to be retried) or dead (retries used up).",
    ),
    (
        MetricKind::SecondsHistogram,
        "tasklight_webhook_attempt_duration_seconds",
        "Duration of webhook delivery attempts, from the request to the end of the answer.",
    ),
    (
        MetricKind::Gauge,
        "tasklight_outbox_lag_seconds",
        "Age of the oldest webhook delivery not yet made (0 when none waits); the same on every instance.",
    ),
    (
        MetricKind::Gauge,
        "tasklight_webhook_deliveries_pending",
        "Webhook deliveries waiting for an attempt; the same on every instance.",
    ),
    (
        MetricKind::Gauge,
        "tasklight_webhook_dead_letters",
        "Webhook deliveries whose retries are used up (dead letters); the same on every instance.",
    ),
    (
        MetricKind::Counter,
        "tasklight_db_reads_total",
        "Reads that may be slightly stale, by where they went (target replica or primary) and why (replica: fresh enough; own_write: the caller's last write is not replayed there yet; lagging: the replica is further behind than TASKLIGHT_READ_MAX_LAG_MS; down). Counted only with DATABASE_READ_URL.",
    ),
    (
        MetricKind::Gauge,
        "tasklight_db_replica_up",
        "1 while the read replica (DATABASE_READ_URL) answers this instance's checks, else 0 (also 0 without DATABASE_READ_URL).",
    ),
    (
        MetricKind::Gauge,
        "tasklight_db_replica_lag_seconds",
        "How far the read replica is behind the primary: 0 when it has replayed everything the primary wrote, else the age of the last transaction it replayed (0 without DATABASE_READ_URL).",
    ),
    (
        MetricKind::Gauge,
        "tasklight_webhook_circuits_open",
        "Webhook endpoints whose circuit breaker is open or half-open; the same on every instance.",
    ),
    (
        MetricKind::SecondsHistogram,
        "tasklight_event_fanout_seconds",
        "Time from a change to its event being read by this instance's feed (stage read) and handed to an event stream (stage sent).",
    ),
    (
        MetricKind::Gauge,
        "tasklight_event_streams_open",
        "Event streams (SSE) open on this instance.",
    ),
    (
        MetricKind::Counter,
        "tasklight_event_streams_opened_total",
        "Event streams opened.",
    ),
    (
        MetricKind::Counter,
        "tasklight_event_streams_refused_total",
        "Event streams refused because the user already holds the most allowed.",
    ),
    (
        MetricKind::Counter,
        "tasklight_event_streams_ended_total",
        "Event streams ended, by reason.",
    ),
    (
        MetricKind::Counter,
        "tasklight_housekeeping_deleted_total",
        "Rows deleted by this instance's housekeeping because they ended long enough ago, by kind.",
    ),
    (
        MetricKind::SecondsHistogram,
        "http_server_request_duration_seconds",
        "Duration of HTTP requests by method, route template and status code.",
    ),
    (
        MetricKind::SecondsHistogram,
        "db_client_operation_duration_seconds",
        "Duration of database queries by operation.",
    ),
    (
        MetricKind::Gauge,
        "http_server_active_requests",
        "Requests being served now.",
    ),
    (
        MetricKind::Gauge,
        "db_client_connections",
        "Pooled database connections by state.",
    ),
    (
        MetricKind::Gauge,
        "db_client_connections_max",
        "Largest number of pooled database connections.",
    ),
    (
        MetricKind::Gauge,
        "tasklight_build_info",
        "Always 1; labels give the version and instance id.",
    ),
    (
        MetricKind::Gauge,
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
    ),
    (
        MetricKind::Gauge,
        "process_open_fds",
        "Open file descriptors.",
    ),
    (
        MetricKind::Gauge,
        "process_start_time_seconds",
        "Start time of the process since the epoch, in seconds.",
    ),
    (
        MetricKind::Counter,
        "tasklight_auth_events_total",
        "Authentication events by kind.",
    ),
    (
        MetricKind::Counter,
        "tasklight_task_changes_total",
        "Tasks created, updated and deleted.",
    ),
    (
        MetricKind::Counter,
        "tasklight_telemetry_dropped_total",
        "Log lines and spans dropped rather than slow requests down.",
    ),
    (
        MetricKind::Gauge,
        "tasklight_cache_l1_entries",
        "Entries in this instance's in-process cache.",
    ),
    (
        MetricKind::Counter,
        "tasklight_cache_requests_total",
        "Cache lookups by cache, layer and result.",
    ),
    (
        MetricKind::Counter,
        "tasklight_rate_limit_decisions_total",
        "Rate-limit decisions by policy and result (allowed, limited).",
    ),
    (
        MetricKind::Counter,
        "tasklight_rate_limit_fallback_decisions_total",
        "Rate-limit decisions made in-process because Redis was unreachable.",
    ),
    (
        MetricKind::Gauge,
        "tasklight_rate_limit_fallback_active",
        "1 while this instance limits in-process because Redis is unreachable.",
    ),
    (
        MetricKind::Counter,
        "tasklight_cache_invalidations_total",
        "Cache invalidations sent to and received from other instances.",
    ),
];

fn describe(recorder: &PrometheusRecorder) {
    for (kind, name, text) in DESCRIPTIONS {
        match kind {
            MetricKind::Counter => recorder.describe_counter(name.into(), None, text.into()),
            MetricKind::Gauge => recorder.describe_gauge(name.into(), None, text.into()),
            MetricKind::SecondsHistogram => {
                recorder.describe_histogram(name.into(), Some(Unit::Seconds), text.into());
            }
        }
    }
}

/// Appends `process_cpu_seconds_total` as the counter it is (the Prometheus client
/// libraries' name and type), in the text format's own layout.
fn render_cpu_seconds(text: &mut String, cpu_seconds: f64) {
    use std::fmt::Write as _;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.is_empty() {
        text.push('\n');
    }
    let _ = write!(
        text,
        "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds.\n\
         # TYPE process_cpu_seconds_total counter\n\
         process_cpu_seconds_total {cpu_seconds}\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_is_a_counter_family_of_its_own() {
        let mut text = "# TYPE a gauge\na 1\n".to_owned();
        render_cpu_seconds(&mut text, 1.25);
        assert_eq!(
            text,
            "# TYPE a gauge\na 1\n\n# HELP process_cpu_seconds_total User and system CPU time \
             spent, in seconds.\n# TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.25\n"
        );
    }

    #[test]
    fn methods_the_client_invents_become_other() {
        assert_eq!(known_method("GET"), "GET");
        assert_eq!(known_method("PATCH"), "PATCH");
        assert_eq!(known_method("FOOBAR"), "_OTHER");
        assert_eq!(known_method("get"), "_OTHER");
    }

    #[test]
    fn request_histograms_are_labelled_by_template_and_created_once() {
        let metrics = Metrics::new("unit");
        for _ in 0..3 {
            metrics.record_request("GET", "/api/v1/tasks/{task_id}", 200, 0.01);
        }
        metrics.record_request("BREW", "unmatched", 405, 0.001);
        assert_eq!(metrics.http.read().unwrap().len(), 2);
        let text = metrics.handle.render();
        assert!(text.contains(
            "http_server_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/tasks/{task_id}\",status_code=\"200\"} 3"
        ));
        assert!(text.contains("method=\"_OTHER\",route=\"unmatched\",status_code=\"405\""));
    }
}
