//! Webhook storage: subscriptions, deliveries, attempts, the outbox reader's position, and the
//! leases that let one worker at a time deliver to an endpoint.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, Dialect, StoreResult};
use crate::events::model::Position;

/// A stored subscription.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub project_id: Uuid,
    pub url: String,
    pub description: String,
    /// JSON array of event types.
    pub event_types: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// `closed`, `open` or `half_open`.
    pub circuit: String,
    pub consecutive_failures: i32,
    pub circuit_retry_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub tx_id: i64,
    pub seq: i64,
    pub payload: String,
    pub traceparent: Option<String>,
    pub request_id: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: i32,
    pub cycle_start: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A stored attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRecord {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub instance_id: String,
}

/// Counts the metrics show, read now and then by each instance.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeliveryCounts {
    /// When the oldest pending delivery was created.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Deliveries waiting.
    pub pending: i64,
    /// Dead letters.
    pub dead: i64,
    /// Subscriptions whose circuit is open or half-open.
    pub open_circuits: i64,
}

/// Storage of webhooks.
#[async_trait]
pub trait WebhookStore: Send {
    async fn insert_webhook(&mut self, webhook: &WebhookRecord) -> StoreResult<()>;
    async fn webhook(&mut self, id: Uuid) -> StoreResult<Option<WebhookRecord>>;
    /// A project's subscriptions after `after`, by id.
    async fn webhooks_of(
        &mut self,
        project_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookRecord>>;
    /// Every enabled subscription of a project, for turning its events into deliveries.
    async fn active_webhooks_of(&mut self, project_id: Uuid) -> StoreResult<Vec<WebhookRecord>>;
    /// Writes the settings, secrets and breaker of a subscription (not its lease).
    async fn update_webhook(&mut self, webhook: &WebhookRecord) -> StoreResult<()>;
    async fn delete_webhook(&mut self, id: Uuid) -> StoreResult<()>;

    /// Locks the reader `name`'s row and returns its position; `None` when another instance
    /// holds it (PostgreSQL: `SKIP LOCKED`; SQLite's writers take turns anyway).
    async fn lock_consumer(&mut self, name: &str) -> StoreResult<Option<Position>>;
    async fn set_consumer(&mut self, name: &str, position: Position) -> StoreResult<()>;

    /// Adds a delivery unless the subscription has one for that event already.
    async fn insert_delivery(&mut self, delivery: &DeliveryRecord) -> StoreResult<()>;
    async fn delivery(&mut self, id: Uuid) -> StoreResult<Option<DeliveryRecord>>;
    /// A subscription's deliveries, newest first, older than `before`; only `status` when given.
    async fn deliveries_of(
        &mut self,
        webhook_id: Uuid,
        status: Option<&str>,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    /// A subscription's pending deliveries that are due at `now`, in event order.
    async fn due_deliveries(
        &mut self,
        webhook_id: Uuid,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    /// Writes a delivery's state after an attempt or a redelivery.
    async fn update_delivery(&mut self, delivery: &DeliveryRecord) -> StoreResult<()>;
    async fn insert_attempt(&mut self, attempt: &AttemptRecord) -> StoreResult<()>;
    async fn attempts_of(&mut self, delivery_id: Uuid) -> StoreResult<Vec<AttemptRecord>>;

    /// Leases one enabled subscription with deliveries due at `now` whose lease has run out
    /// and whose circuit is closed or due for a probe, to `owner` until `until`.
    async fn claim_webhook(
        &mut self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookRecord>>;
    /// Extends `owner`'s lease; false if it has lost it.
    async fn renew_lease(
        &mut self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Writes the breaker of a subscription `owner` still leases; false if it has lost it.
    async fn update_circuit(&mut self, webhook: &WebhookRecord, owner: &str) -> StoreResult<bool>;
    /// Ends `owner`'s lease (the time stays, so the least recently served endpoint goes next).
    async fn release_lease(&mut self, id: Uuid, owner: &str, now: DateTime<Utc>)
    -> StoreResult<()>;
    async fn delivery_counts(&mut self) -> StoreResult<DeliveryCounts>;
    /// Deletes up to `limit` deliveries that finished before `before` (delivered then, or
    /// dead-lettered after an attempt due then), with their attempts; returns how many.
    async fn delete_deliveries_finished_before(
        &mut self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<u64>;
}

const WEBHOOK_COLUMNS: &str = "id, project_id, url, description, event_types, secret, previous_secret, \
    previous_expires_at, enabled, disabled_reason, circuit, consecutive_failures, circuit_retry_at, \
    failing_since, lease_owner, lease_until, created_by, created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_type, tx_id, seq, payload, traceparent, \
    request_id, status, attempts, cycle_start, next_attempt_at, last_status, last_error, created_at, delivered_at";

crate::for_each_backend! {
    #[async_trait]
    impl WebhookStore for Connection<DB> {
        async fn insert_webhook(&mut self, w: &WebhookRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO webhooks (id, project_id, url, description, event_types, secret, previous_secret, \
                 previous_expires_at, enabled, disabled_reason, circuit, consecutive_failures, circuit_retry_at, \
                 failing_since, lease_owner, lease_until, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            )
            .bind(w.id).bind(w.project_id).bind(&w.url).bind(&w.description).bind(&w.event_types)
            .bind(&w.secret).bind(&w.previous_secret).bind(w.previous_expires_at).bind(w.enabled)
            .bind(&w.disabled_reason).bind(&w.circuit).bind(w.consecutive_failures).bind(w.circuit_retry_at)
            .bind(w.failing_since).bind(&w.lease_owner).bind(w.lease_until).bind(w.created_by)
            .bind(w.created_at).bind(w.updated_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn webhook(&mut self, id: Uuid) -> StoreResult<Option<WebhookRecord>> {
            let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1");
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.db()).await?)
        }

        async fn webhooks_of(&mut self, project_id: Uuid, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<WebhookRecord>> {
            let sql = format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE project_id = $1 AND ($2 IS NULL OR id > $2) \
                 ORDER BY id LIMIT $3"
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(project_id).bind(after).bind(i64::from(limit))
                .fetch_all(self.db()).await?)
        }

        async fn active_webhooks_of(&mut self, project_id: Uuid) -> StoreResult<Vec<WebhookRecord>> {
            let sql = format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE project_id = $1 AND enabled = $2 \
                 AND disabled_reason IS NULL ORDER BY id"
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project_id).bind(true).fetch_all(self.db()).await?)
        }

        async fn update_webhook(&mut self, w: &WebhookRecord) -> StoreResult<()> {
            sqlx::query(
                "UPDATE webhooks SET url = $2, description = $3, event_types = $4, secret = $5, \
                 previous_secret = $6, previous_expires_at = $7, enabled = $8, disabled_reason = $9, \
                 circuit = $10, consecutive_failures = $11, circuit_retry_at = $12, failing_since = $13, \
                 updated_at = $14 WHERE id = $1",
            )
            .bind(w.id).bind(&w.url).bind(&w.description).bind(&w.event_types).bind(&w.secret)
            .bind(&w.previous_secret).bind(w.previous_expires_at).bind(w.enabled).bind(&w.disabled_reason)
            .bind(&w.circuit).bind(w.consecutive_failures).bind(w.circuit_retry_at).bind(w.failing_since)
            .bind(w.updated_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn delete_webhook(&mut self, id: Uuid) -> StoreResult<()> {
            sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(self.db()).await?;
            Ok(())
        }

        async fn lock_consumer(&mut self, name: &str) -> StoreResult<Option<Position>> {
            let sql = format!(
                "SELECT tx_id, seq FROM event_consumers WHERE name = $1{}",
                if <DB as Dialect>::FOR_UPDATE.is_empty() { "" } else { " FOR UPDATE SKIP LOCKED" }
            );
            let row: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(self.db()).await?;
            Ok(row.map(|(tx_id, seq)| Position { tx_id, seq }))
        }

        async fn set_consumer(&mut self, name: &str, p: Position) -> StoreResult<()> {
            sqlx::query("UPDATE event_consumers SET tx_id = $2, seq = $3 WHERE name = $1")
                .bind(name).bind(p.tx_id).bind(p.seq)
                .execute(self.db()).await?;
            Ok(())
        }

        async fn insert_delivery(&mut self, d: &DeliveryRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, tx_id, seq, payload, \
                 traceparent, request_id, status, attempts, cycle_start, next_attempt_at, last_status, last_error, \
                 created_at, delivered_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 ON CONFLICT (webhook_id, event_id) DO NOTHING",
            )
            .bind(d.id).bind(d.webhook_id).bind(d.event_id).bind(&d.event_type).bind(d.tx_id).bind(d.seq)
            .bind(&d.payload).bind(&d.traceparent).bind(&d.request_id).bind(&d.status).bind(d.attempts)
            .bind(d.cycle_start).bind(d.next_attempt_at).bind(d.last_status).bind(&d.last_error)
            .bind(d.created_at).bind(d.delivered_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn delivery(&mut self, id: Uuid) -> StoreResult<Option<DeliveryRecord>> {
            let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.db()).await?)
        }

        async fn deliveries_of(&mut self, webhook_id: Uuid, status: Option<&str>, before: Option<Uuid>, limit: u32) -> StoreResult<Vec<DeliveryRecord>> {
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
                 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(webhook_id).bind(status).bind(before).bind(i64::from(limit))
                .fetch_all(self.db()).await?)
        }

        async fn due_deliveries(&mut self, webhook_id: Uuid, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<DeliveryRecord>> {
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending' \
                 AND next_attempt_at <= $2 ORDER BY tx_id, seq LIMIT $3"
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(webhook_id).bind(now).bind(i64::from(limit))
                .fetch_all(self.db()).await?)
        }

        async fn update_delivery(&mut self, d: &DeliveryRecord) -> StoreResult<()> {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $2, attempts = $3, cycle_start = $4, next_attempt_at = $5, \
                 last_status = $6, last_error = $7, delivered_at = $8 WHERE id = $1",
            )
            .bind(d.id).bind(&d.status).bind(d.attempts).bind(d.cycle_start).bind(d.next_attempt_at)
            .bind(d.last_status).bind(&d.last_error).bind(d.delivered_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn insert_attempt(&mut self, a: &AttemptRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, latency_ms, status_code, \
                 error, instance_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(a.id).bind(a.delivery_id).bind(a.attempt).bind(a.started_at).bind(a.latency_ms)
            .bind(a.status_code).bind(&a.error).bind(&a.instance_id)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn attempts_of(&mut self, delivery_id: Uuid) -> StoreResult<Vec<AttemptRecord>> {
            Ok(sqlx::query_as(
                "SELECT id, delivery_id, attempt, started_at, latency_ms, status_code, error, instance_id \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt, started_at LIMIT 100",
            )
            .bind(delivery_id)
            .fetch_all(self.db())
            .await?)
        }

        async fn claim_webhook(&mut self, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> StoreResult<Option<WebhookRecord>> {
            let sql = format!(
                "UPDATE webhooks SET lease_owner = $1, lease_until = $2 WHERE id = (\
                 SELECT w.id FROM webhooks w WHERE w.enabled = $4 AND w.disabled_reason IS NULL \
                 AND (w.lease_until IS NULL OR w.lease_until < $3) \
                 AND (w.circuit = 'closed' OR w.circuit_retry_at <= $3) \
                 AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id \
                 AND d.status = 'pending' AND d.next_attempt_at <= $3) \
                 ORDER BY w.lease_until{} LIMIT 1{}) RETURNING {WEBHOOK_COLUMNS}",
                if <DB as Dialect>::FOR_UPDATE.is_empty() { "" } else { " NULLS FIRST" },
                if <DB as Dialect>::FOR_UPDATE.is_empty() { "" } else { " FOR UPDATE SKIP LOCKED" },
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(owner).bind(until).bind(now).bind(true)
                .fetch_optional(self.db()).await?)
        }

        async fn renew_lease(&mut self, id: Uuid, owner: &str, until: DateTime<Utc>) -> StoreResult<bool> {
            let done = sqlx::query("UPDATE webhooks SET lease_until = $3 WHERE id = $1 AND lease_owner = $2")
                .bind(id).bind(owner).bind(until)
                .execute(self.db()).await?;
            Ok(done.rows_affected() == 1)
        }

        async fn update_circuit(&mut self, w: &WebhookRecord, owner: &str) -> StoreResult<bool> {
            let done = sqlx::query(
                "UPDATE webhooks SET circuit = $3, consecutive_failures = $4, circuit_retry_at = $5, \
                 failing_since = $6, disabled_reason = $7 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(w.id).bind(owner).bind(&w.circuit).bind(w.consecutive_failures).bind(w.circuit_retry_at)
            .bind(w.failing_since).bind(&w.disabled_reason)
            .execute(self.db())
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn release_lease(&mut self, id: Uuid, owner: &str, now: DateTime<Utc>) -> StoreResult<()> {
            sqlx::query("UPDATE webhooks SET lease_owner = NULL, lease_until = $3 WHERE id = $1 AND lease_owner = $2")
                .bind(id).bind(owner).bind(now)
                .execute(self.db()).await?;
            Ok(())
        }

        async fn delete_deliveries_finished_before(&mut self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
            // Attempts go with their delivery (ON DELETE CASCADE).
            let done = sqlx::query(
                "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE \
                 (status = 'delivered' AND delivered_at < $1) OR (status = 'dead' AND next_attempt_at < $1) \
                 LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(self.db())
            .await?;
            Ok(done.rows_affected())
        }

        async fn delivery_counts(&mut self) -> StoreResult<DeliveryCounts> {
            let (oldest, pending, dead): (Option<DateTime<Utc>>, i64, i64) = sqlx::query_as(
                "SELECT MIN(CASE WHEN status = 'pending' THEN created_at END), \
                 COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0) FROM webhook_deliveries \
                 WHERE status <> 'delivered'",
            )
            .fetch_one(self.db())
            .await?;
            let (open_circuits,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhooks WHERE circuit <> 'closed'")
                .fetch_one(self.db())
                .await?;
            Ok(DeliveryCounts { oldest_pending: oldest, pending, dead, open_circuits })
        }
    }
}
