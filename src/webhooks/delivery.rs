//! Webhook delivery, run by every instance: any instance may deliver any event.
//!
//! - The **dispatcher** turns outbox events into deliveries, one for each enabled subscription
//!   of the event's project that takes its type. It holds the `webhooks` row of
//!   `event_consumers` while it works (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so one instance at
//!   a time; SQLite's writers take turns), and moves that row's position in the same
//!   transaction as the deliveries it inserts: an event becomes deliveries exactly once.
//! - **Workers** (`TASKLIGHT_WEBHOOK_WORKERS` per instance) lease one subscription at a time
//!   (`lease_until`, `TASKLIGHT_WEBHOOK_LEASE_MS`) and send its due deliveries in event order.
//!   One worker per endpoint keeps the order and makes the circuit breaker's state one writer's.
//!   A worker that dies (SIGKILL) just stops renewing: when its lease runs out another
//!   instance takes the subscription and sends what was not recorded as delivered, again
//!   (at least once: receivers deduplicate on `webhook-id`, the event id).
//! - Each attempt is signed (Standard Webhooks), carries `traceparent` (a span continuing the
//!   trace of the request that made the event) and is recorded with its status code, latency
//!   and error, with the delivery's new state, in one transaction.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use rand::Rng;
use tokio::sync::Notify;
use uuid::Uuid;

use super::client::{Answer, Outgoing};
use super::model::{Circuit, DeliveryStatus};
use super::signing::signature;
use super::store::{AttemptRecord, DeliveryRecord, WebhookRecord};
use crate::config::WebhookConfig;
use crate::domain::DomainContext;
use crate::error::AppResult;
use crate::events::feed::Feed;
use crate::events::model::is_project_event;

/// The outbox reader's name in `event_consumers`.
const CONSUMER: &str = "webhooks";
/// Events turned into deliveries per transaction.
const DISPATCH_BATCH: u32 = 200;
/// Deliveries a worker takes per lease.
const DELIVERIES_PER_LEASE: u32 = 20;
/// How often an idle instance looks for due retries nobody told it of (one worker does).
const IDLE_POLL: Duration = Duration::from_millis(1_000);
/// How often the dispatcher reads the outbox when the feed told it of nothing (events written
/// while every instance was down, a lagged subscription): the feed wakes it for every event.
const DISPATCH_POLL: Duration = Duration::from_secs(10);
/// How often the delivery gauges are read.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// The delivery machinery of this instance.
pub struct WebhookRuntime {
    ctx: DomainContext,
    config: WebhookConfig,
    outgoing: Outgoing,
    wake: Arc<Notify>,
}

impl Drop for WebhookRuntime {
    fn drop(&mut self) {
        self.wake.notify_waiters();
    }
}

impl WebhookRuntime {
    /// Starts the dispatcher, the workers and the gauges; they stop when the runtime is dropped
    /// or the database closed.
    pub fn start(
        ctx: DomainContext,
        feed: &Arc<Feed>,
        config: &WebhookConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let runtime = Arc::new(Self {
            outgoing: Outgoing::new(config)?,
            config: config.clone(),
            ctx,
            wake: Arc::new(Notify::new()),
        });
        let (events, _) = feed.subscribe();
        tokio::spawn(dispatcher(Arc::downgrade(&runtime), events));
        for worker in 0..config.workers {
            tokio::spawn(work(Arc::downgrade(&runtime), worker));
        }
        tokio::spawn(gauges(Arc::downgrade(&runtime)));
        Ok(runtime)
    }

    /// Wakes the workers (a delivery was queued by hand).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// The client's address guard, for checking destinations.
    pub fn guard(&self) -> &super::client::AddressGuard {
        self.outgoing.guard()
    }

    /// Turns the next batch of outbox events into deliveries; returns how many events it read
    /// (0 when another instance holds the reader).
    pub async fn dispatch(&self) -> AppResult<usize> {
        let mut work = self.ctx.begin(None).await?;
        let Some(position) = work.lock_consumer(CONSUMER).await? else {
            return Ok(0);
        };
        let events = work.events_after(position, None, DISPATCH_BATCH).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(0);
        };
        let mut subscriptions: std::collections::HashMap<Uuid, Vec<WebhookRecord>> =
            Default::default();
        let mut queued = 0;
        for event in &events {
            let Some(project_id) = event
                .project_id
                .filter(|_| is_project_event(&event.event_type))
            else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(entry) =
                subscriptions.entry(project_id)
            {
                entry.insert(work.active_webhooks_of(project_id).await?);
            }
            for webhook in &subscriptions[&project_id] {
                if webhook.created_at > event.occurred_at || !takes(webhook, &event.event_type) {
                    continue;
                }
                work.insert_delivery(&DeliveryRecord {
                    id: Uuid::now_v7(),
                    webhook_id: webhook.id,
                    event_id: event.id,
                    event_type: event.event_type.clone(),
                    tx_id: event.position.tx_id,
                    seq: event.position.seq,
                    payload: event.payload.clone(),
                    traceparent: event.traceparent.clone(),
                    request_id: event.request_id.clone(),
                    status: DeliveryStatus::Pending.as_str().to_owned(),
                    attempts: 0,
                    cycle_start: 0,
                    next_attempt_at: crate::db::now(),
                    last_status: None,
                    last_error: None,
                    created_at: crate::db::now(),
                    delivered_at: None,
                })
                .await?;
                queued += 1;
            }
        }
        work.set_consumer(CONSUMER, last).await?;
        work.commit().await?;
        if queued > 0 {
            self.wake();
        }
        Ok(events.len())
    }

    /// Leases one subscription with due deliveries and sends them; false when there was none.
    pub async fn deliver_some(&self, owner: &str) -> AppResult<bool> {
        let now = crate::db::now();
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let claimed = self
            .ctx
            .read()
            .await?
            .claim_webhook(owner, now, now + lease)
            .await?;
        let Some(mut webhook) = claimed else {
            return Ok(false);
        };
        let probe = Circuit::from_stored(&webhook.circuit) != Circuit::Closed;
        if probe {
            webhook.circuit = Circuit::HalfOpen.as_str().to_owned();
            self.ctx
                .read()
                .await?
                .update_circuit(&webhook, owner)
                .await?;
            tracing::info!(webhook_id = %webhook.id, "webhook circuit half-open: one probe goes out");
        }
        let limit = if probe { 1 } else { DELIVERIES_PER_LEASE };
        let due = self
            .ctx
            .read()
            .await?
            .due_deliveries(webhook.id, now, limit)
            .await?;
        let mut lease_until = now + lease;
        for mut delivery in due {
            // Keep the lease while sending: renew when less than one attempt's timeout (and a
            // second) is left.
            let margin = chrono::Duration::from_std(self.config.timeout + Duration::from_secs(1))
                .unwrap_or_default();
            if lease_until - crate::db::now() < margin {
                lease_until = crate::db::now() + lease;
                if !self
                    .ctx
                    .read()
                    .await?
                    .renew_lease(webhook.id, owner, lease_until)
                    .await?
                {
                    return Ok(true);
                }
            }
            let started_at = crate::db::now();
            let answer = self.send(&webhook, &delivery).await;
            let finished = crate::db::now();
            let ok = answer.succeeded();
            let attempt = after_attempt(
                &mut delivery,
                &answer,
                finished,
                &self.config.retry_schedule,
            );
            let mut work = self.ctx.begin(None).await?;
            work.insert_attempt(&AttemptRecord {
                id: Uuid::now_v7(),
                delivery_id: delivery.id,
                attempt,
                started_at,
                latency_ms: answer.latency.as_millis().min(i32::MAX as u128) as i32,
                status_code: answer.status.map(i32::from),
                error: answer.error.clone(),
                instance_id: self.ctx.instance_id.to_string(),
            })
            .await?;
            work.update_delivery(&delivery).await?;
            let opened = breaker(
                &mut webhook,
                ok,
                answer.error.as_deref(),
                finished,
                &self.config,
            );
            if !work.update_circuit(&webhook, owner).await? {
                // Another worker took the endpoint over (this one stalled past its lease): the
                // attempt happened and is recorded, but the breaker and what comes next are the
                // new owner's.
                work.commit().await?;
                return Ok(true);
            }
            work.commit().await?;
            self.observe(&webhook, &delivery, &answer, attempt, opened);
            if !ok && Circuit::from_stored(&webhook.circuit) == Circuit::Open {
                break;
            }
        }
        self.ctx
            .read()
            .await?
            .release_lease(webhook.id, owner, crate::db::now())
            .await?;
        Ok(true)
    }

    /// One attempt: signed, traced, bounded.
    async fn send(&self, webhook: &WebhookRecord, delivery: &DeliveryRecord) -> Answer {
        let now = crate::db::now();
        let mut secrets = vec![webhook.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&webhook.previous_secret, webhook.previous_expires_at)
            && until > now
        {
            secrets.push(previous);
        }
        let id = delivery.event_id.to_string();
        let timestamp = now.timestamp();
        let host = url::Url::parse(&webhook.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let (span, traceparent) = crate::telemetry::span::continue_trace(
            delivery.traceparent.as_deref(),
            "webhook deliver",
            SpanKind::Client,
            vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("server.address", host),
                KeyValue::new("tasklight.webhook.id", webhook.id.to_string()),
                KeyValue::new("tasklight.event.id", id.clone()),
                KeyValue::new("tasklight.event.type", delivery.event_type.clone()),
                KeyValue::new("tasklight.request_id", delivery.request_id.clone()),
            ],
        );
        let headers = [
            ("webhook-id", id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                signature(&secrets, &id, timestamp, delivery.payload.as_bytes()),
            ),
            ("traceparent", traceparent.clone()),
        ];
        let answer = self
            .outgoing
            .post(&webhook.url, &headers, delivery.payload.clone())
            .await;
        if let Some(mut span) = span {
            use opentelemetry::trace::Span as _;
            if let Some(status) = answer.status {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            if !answer.succeeded() {
                span.set_status(Status::error(answer.error.clone().unwrap_or_default()));
            }
            span.end();
        }
        // The delivery's lines carry the request id and the trace of the request that made the
        // event (with the delivery's span id), like that request's own lines.
        let behalf = crate::telemetry::context::on_behalf_of(
            &delivery.request_id,
            &traceparent,
            "webhook delivery",
        );
        crate::telemetry::context::sync_scope(behalf, || {
            let latency_ms = answer.latency.as_millis() as u64;
            if answer.succeeded() {
                tracing::info!(
                    event_id = %delivery.event_id, webhook_id = %webhook.id, event_type = %delivery.event_type,
                    status = answer.status, latency_ms, "webhook delivered"
                );
            } else {
                tracing::warn!(
                    event_id = %delivery.event_id, webhook_id = %webhook.id, event_type = %delivery.event_type,
                    status = answer.status, latency_ms, error = answer.error.as_deref().unwrap_or_default(),
                    "webhook delivery failed"
                );
            }
        });
        answer
    }

    fn observe(
        &self,
        webhook: &WebhookRecord,
        delivery: &DeliveryRecord,
        answer: &Answer,
        attempt: i32,
        opened: bool,
    ) {
        let metrics = &self.ctx.metrics.webhooks;
        metrics.attempt(answer.latency.as_secs_f64());
        match DeliveryStatus::from_stored(&delivery.status) {
            DeliveryStatus::Delivered => metrics.result("delivered"),
            DeliveryStatus::Dead => {
                metrics.result("dead");
                tracing::warn!(event_id = %delivery.event_id, webhook_id = %webhook.id, attempts = attempt,
                    "webhook delivery dead-lettered: every attempt of the retry schedule failed");
            }
            DeliveryStatus::Pending => metrics.result("failed"),
        }
        if opened {
            tracing::warn!(webhook_id = %webhook.id, failures = webhook.consecutive_failures,
                retry_at = ?webhook.circuit_retry_at, "webhook circuit opened: nothing is sent to this endpoint until then");
        }
        if webhook.disabled_reason.is_some() && opened {
            tracing::warn!(webhook_id = %webhook.id, reason = webhook.disabled_reason.as_deref().unwrap_or_default(),
                "webhook disabled by the service");
        }
    }
}

/// Whether `webhook` takes events of `event_type`.
fn takes(webhook: &WebhookRecord, event_type: &str) -> bool {
    serde_json::from_str::<Vec<String>>(&webhook.event_types)
        .map(|types| types.iter().any(|t| t == event_type))
        .unwrap_or(false)
}

/// Records an attempt's outcome on its delivery: delivered, another attempt after the next
/// wait of the schedule (with ±20% jitter), or dead when the schedule is used up. Returns the
/// attempt's number.
pub fn after_attempt(
    delivery: &mut DeliveryRecord,
    answer: &Answer,
    now: DateTime<Utc>,
    schedule: &[Duration],
) -> i32 {
    delivery.attempts += 1;
    delivery.last_status = answer.status.map(i32::from);
    delivery.last_error = answer.error.clone();
    if answer.succeeded() {
        delivery.status = DeliveryStatus::Delivered.as_str().to_owned();
        delivery.delivered_at = Some(now);
        return delivery.attempts;
    }
    let made = (delivery.attempts - delivery.cycle_start).max(1) as usize;
    match schedule.get(made - 1) {
        Some(wait) => {
            let jittered = wait.mul_f64(rand::rng().random_range(0.8..=1.2));
            delivery.next_attempt_at =
                now + chrono::Duration::from_std(jittered).unwrap_or_default();
        }
        None => delivery.status = DeliveryStatus::Dead.as_str().to_owned(),
    }
    delivery.attempts
}

/// The circuit breaker after an attempt: a success closes it; a failure counts, and opens it
/// at the threshold or when it was a half-open probe; an endpoint failing for longer than
/// `disable_after` is disabled with the reason. Returns whether the circuit (re)opened.
pub fn breaker(
    webhook: &mut WebhookRecord,
    ok: bool,
    error: Option<&str>,
    now: DateTime<Utc>,
    config: &WebhookConfig,
) -> bool {
    if ok {
        webhook.circuit = Circuit::Closed.as_str().to_owned();
        webhook.consecutive_failures = 0;
        webhook.circuit_retry_at = None;
        webhook.failing_since = None;
        return false;
    }
    webhook.consecutive_failures += 1;
    let since = *webhook.failing_since.get_or_insert(now);
    let was = Circuit::from_stored(&webhook.circuit);
    let opens =
        was == Circuit::HalfOpen || webhook.consecutive_failures >= config.breaker_failures as i32;
    if opens {
        webhook.circuit = Circuit::Open.as_str().to_owned();
        webhook.circuit_retry_at =
            Some(now + chrono::Duration::from_std(config.breaker_cooldown).unwrap_or_default());
    }
    if now - since >= chrono::Duration::from_std(config.disable_after).unwrap_or_default() {
        webhook.disabled_reason = Some(
            format!(
                "disabled by the service: every delivery has failed since {} ({} attempts in a row; last: {})",
                since.to_rfc3339(),
                webhook.consecutive_failures,
                error.unwrap_or("no answer")
            )
            .chars()
            .take(500)
            .collect(),
        );
    }
    opens
}

async fn dispatcher(
    runtime: std::sync::Weak<WebhookRuntime>,
    mut events: tokio::sync::broadcast::Receiver<Arc<crate::events::feed::FeedEvent>>,
) {
    let mut failing = false;
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = events.recv() => {
                    // Whatever else is queued is read from the outbox in the same batch.
                    while events.try_recv().is_ok() {}
                }
                () = tokio::time::sleep(DISPATCH_POLL) => {}
            }
        }
        first = false;
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        loop {
            match runtime.dispatch().await {
                Ok(read) if read == DISPATCH_BATCH as usize => continue,
                Ok(_) => {
                    failing = false;
                    break;
                }
                Err(err) => {
                    if runtime.ctx.db.is_closed() {
                        return;
                    }
                    if !failing {
                        tracing::warn!(error = %err, "webhook dispatcher cannot read the outbox; retrying");
                        failing = true;
                    }
                    break;
                }
            }
        }
    }
}

async fn work(runtime: std::sync::Weak<WebhookRuntime>, worker: u32) {
    loop {
        let Some(live) = runtime.upgrade() else {
            return;
        };
        let owner = format!("{}/{worker}", live.ctx.instance_id);
        let busy = match live.deliver_some(&owner).await {
            Ok(busy) => busy,
            Err(err) => {
                if live.ctx.db.is_closed() {
                    return;
                }
                tracing::warn!(error = %err, "webhook worker failed; retrying");
                false
            }
        };
        if busy {
            // More may be due on other endpoints: let the idle workers look too.
            live.wake.notify_waiters();
        } else if worker == 0 {
            // One worker per instance looks for due retries when nothing woke it (holding the
            // runtime for at most the poll interval); the others wait to be woken.
            tokio::select! {
                () = live.wake.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        } else {
            // Without holding the runtime: dropping it wakes everyone, and they stop.
            let wake = live.wake.clone();
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            drop(live);
            notified.await;
        }
    }
}

async fn gauges(runtime: std::sync::Weak<WebhookRuntime>) {
    loop {
        tokio::time::sleep(GAUGE_INTERVAL).await;
        let Some(live) = runtime.upgrade() else {
            return;
        };
        let counts = async { live.ctx.read().await?.delivery_counts().await }.await;
        match counts {
            Ok(counts) => live.ctx.metrics.webhooks.set_counts(
                counts.oldest_pending.map_or(0.0, |oldest| {
                    (crate::db::now() - oldest).num_milliseconds().max(0) as f64 / 1e3
                }),
                counts.pending,
                counts.dead,
                counts.open_circuits,
            ),
            Err(_) if live.ctx.db.is_closed() => return,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WebhookConfig {
        let vars = std::collections::HashMap::from([(
            "TASKLIGHT_WEBHOOK_BREAKER_FAILURES".to_owned(),
            "3".to_owned(),
        )]);
        crate::config::Config::from_map(&vars).unwrap().webhooks
    }

    fn webhook() -> WebhookRecord {
        let now = crate::db::now();
        WebhookRecord {
            id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            url: "https://example.com".into(),
            description: String::new(),
            event_types: "[]".into(),
            secret: String::new(),
            previous_secret: None,
            previous_expires_at: None,
            enabled: true,
            disabled_reason: None,
            circuit: "closed".into(),
            consecutive_failures: 0,
            circuit_retry_at: None,
            failing_since: None,
            lease_owner: None,
            lease_until: None,
            created_by: Uuid::now_v7(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_circuit_opens_at_the_threshold_a_failed_probe_reopens_it_and_a_success_closes_it() {
        let config = config();
        let mut w = webhook();
        let t0 = crate::db::now();
        assert!(!breaker(&mut w, false, Some("500"), t0, &config));
        assert!(!breaker(&mut w, false, Some("500"), t0, &config));
        assert!(breaker(&mut w, false, Some("500"), t0, &config));
        assert_eq!(w.circuit, "open");
        assert_eq!(w.circuit_retry_at, Some(t0 + chrono::Duration::seconds(60)));
        w.circuit = "half_open".into();
        assert!(
            breaker(&mut w, false, None, t0, &config),
            "a failed probe reopens"
        );
        assert!(!breaker(&mut w, true, None, t0, &config));
        assert_eq!(
            (w.circuit.as_str(), w.consecutive_failures, w.failing_since),
            ("closed", 0, None)
        );
    }

    #[test]
    fn an_endpoint_failing_longer_than_the_limit_is_disabled_with_the_reason() {
        let config = config();
        let mut w = webhook();
        let t0 = crate::db::now();
        breaker(
            &mut w,
            false,
            Some("the endpoint answered 503"),
            t0,
            &config,
        );
        assert!(w.disabled_reason.is_none());
        breaker(
            &mut w,
            false,
            Some("the endpoint answered 503"),
            t0 + chrono::Duration::days(5),
            &config,
        );
        let reason = w.disabled_reason.unwrap();
        assert!(
            reason.contains("answered 503") && reason.contains("2 attempts"),
            "{reason}"
        );
    }

    #[test]
    fn retries_follow_the_schedule_with_jitter_then_dead_letter() {
        let schedule = [Duration::from_secs(10), Duration::from_secs(100)];
        let now = crate::db::now();
        let mut d = DeliveryRecord {
            id: Uuid::now_v7(),
            webhook_id: Uuid::now_v7(),
            event_id: Uuid::now_v7(),
            event_type: "task.created".into(),
            tx_id: 0,
            seq: 1,
            payload: "{}".into(),
            traceparent: None,
            request_id: "-".into(),
            status: "pending".into(),
            attempts: 0,
            cycle_start: 0,
            next_attempt_at: now,
            last_status: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
        };
        let failed = Answer {
            status: Some(500),
            error: Some("the endpoint answered 500".into()),
            latency: Duration::ZERO,
        };
        assert_eq!(after_attempt(&mut d, &failed, now, &schedule), 1);
        let wait = (d.next_attempt_at - now).num_milliseconds();
        assert!((8_000..=12_000).contains(&wait), "{wait}");
        after_attempt(&mut d, &failed, now, &schedule);
        let wait = (d.next_attempt_at - now).num_milliseconds();
        assert!((80_000..=120_000).contains(&wait), "{wait}");
        assert_eq!(d.status, "pending");
        after_attempt(&mut d, &failed, now, &schedule);
        assert_eq!((d.status.as_str(), d.attempts), ("dead", 3));
        // Redelivered by hand: a new round of the schedule, then delivered.
        d.status = "pending".into();
        d.cycle_start = d.attempts;
        after_attempt(&mut d, &failed, now, &schedule);
        assert_eq!(d.status, "pending");
        let ok = Answer {
            status: Some(204),
            error: None,
            latency: Duration::ZERO,
        };
        assert_eq!(after_attempt(&mut d, &ok, now, &schedule), 5);
        assert_eq!(d.status, "delivered");
        assert_eq!(d.delivered_at, Some(now));
    }
}
