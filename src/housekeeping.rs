//! Housekeeping: deletes the rows the service no longer needs, so that no table grows for ever.
//!
//! Every instance sweeps once at start-up and then every hour. Deletes go in batches of
//! [`BATCH`] rows, each statement its own transaction, so no sweep holds a lock for long, and
//! instances sweeping at the same time only repeat a little work (a row is deleted once).
//! Expired idempotency keys go in one statement, as under the earlier sweeper: an hourly sweep
//! finds about an hour's worth.
//!
//! | rows | deleted | why then |
//! |---|---|---|
//! | idempotency keys | once expired | a retry after that is a new request |
//! | sessions, with their refresh tokens | [`GRACE`] after the session expired | no token of theirs works any more |
//! | email-verification tokens | [`GRACE`] after they expired or were used | they verify nothing any more |
//! | invitations | `TASKLIGHT_INVITATION_RETENTION_SECS` (30 days) after they closed: answered, revoked, replaced, or expired while pending | no list shows them, and answering one is already a 404 |
//! | webhook deliveries, with their attempts | `TASKLIGHT_WEBHOOK_DELIVERY_RETENTION_SECS` (14 days) after they were delivered or dead-lettered | the owner's window to read and redeliver them |
//!
//! Events and stream tickets are swept by the event feed (`events::feed`); audit entries,
//! activity and everything a user made are kept.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::db::{StoreError, StoreResult};
use crate::domain::DomainContext;
use crate::store::Store;

/// Rows one statement deletes at most.
pub const BATCH: u32 = 1_000;

/// How long expired sessions and used or expired verification tokens stay: long enough that a
/// request which read one just before it ended is answered as before.
pub const GRACE: Duration = Duration::from_secs(86_400);

/// How often an instance sweeps.
const INTERVAL: Duration = Duration::from_secs(3_600);

/// How long closed rows are kept, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `TASKLIGHT_INVITATION_RETENTION_SECS`.
    pub invitations: Duration,
    /// `TASKLIGHT_WEBHOOK_DELIVERY_RETENTION_SECS`.
    pub webhook_deliveries: Duration,
}

impl Retention {
    /// The retention the configuration asks for.
    pub fn from_config(config: &Config) -> Self {
        Self {
            invitations: config.invitation_retention,
            webhook_deliveries: config.webhooks.delivery_retention,
        }
    }
}

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub idempotency_keys: u64,
    pub sessions: u64,
    pub verification_tokens: u64,
    pub invitations: u64,
    pub webhook_deliveries: u64,
}

impl Swept {
    fn total(&self) -> u64 {
        self.idempotency_keys
            + self.sessions
            + self.verification_tokens
            + self.invitations
            + self.webhook_deliveries
    }
}

/// The tables swept in batches.
#[derive(Debug, Clone, Copy)]
enum Rows {
    Sessions,
    VerificationTokens,
    Invitations,
    WebhookDeliveries,
}

impl Rows {
    /// The `rows` label of `tasklight_housekeeping_deleted_total`.
    fn label(self) -> &'static str {
        match self {
            Self::Sessions => "sessions",
            Self::VerificationTokens => "verification_tokens",
            Self::Invitations => "invitations",
            Self::WebhookDeliveries => "webhook_deliveries",
        }
    }
}

/// Deletes one batch of `rows` that ended before `before`.
async fn delete_batch(
    store: &mut dyn Store,
    rows: Rows,
    before: DateTime<Utc>,
) -> StoreResult<u64> {
    match rows {
        Rows::Sessions => store.delete_sessions_expired_before(before, BATCH).await,
        Rows::VerificationTokens => store.delete_verification_tokens_before(before, BATCH).await,
        Rows::Invitations => store.delete_invitations_closed_before(before, BATCH).await,
        Rows::WebhookDeliveries => store.delete_deliveries_finished_before(before, BATCH).await,
    }
}

/// Deletes every row of `rows` that ended more than `kept` before `now`, a batch at a time,
/// counting each batch as it commits.
async fn delete_all(
    ctx: &DomainContext,
    rows: Rows,
    now: DateTime<Utc>,
    kept: Duration,
) -> StoreResult<u64> {
    // A retention beyond chrono's range keeps everything.
    let Some(before) = chrono::Duration::from_std(kept)
        .ok()
        .and_then(|kept| now.checked_sub_signed(kept))
    else {
        return Ok(0);
    };
    let mut total = 0;
    loop {
        let deleted = delete_batch(&mut *ctx.read().await?, rows, before).await?;
        ctx.metrics.housekeeping.deleted(rows.label(), deleted);
        total += deleted;
        if deleted < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// One sweep, as of `now`: see the module documentation.
pub async fn sweep(
    ctx: &DomainContext,
    retention: &Retention,
    now: DateTime<Utc>,
) -> StoreResult<Swept> {
    let idempotency_keys = ctx
        .read()
        .await?
        .delete_expired_idempotency_keys(now)
        .await?;
    ctx.metrics
        .housekeeping
        .deleted("idempotency_keys", idempotency_keys);
    Ok(Swept {
        idempotency_keys,
        sessions: delete_all(ctx, Rows::Sessions, now, GRACE).await?,
        verification_tokens: delete_all(ctx, Rows::VerificationTokens, now, GRACE).await?,
        invitations: delete_all(ctx, Rows::Invitations, now, retention.invitations).await?,
        webhook_deliveries: delete_all(
            ctx,
            Rows::WebhookDeliveries,
            now,
            retention.webhook_deliveries,
        )
        .await?,
    })
}

/// Sweeps at once and then every hour, for as long as the database is open.
pub fn spawn(ctx: DomainContext, retention: Retention) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            match sweep(&ctx, &retention, crate::db::now()).await {
                Ok(swept) if swept.total() == 0 => {}
                Ok(swept) => tracing::info!(
                    idempotency_keys = swept.idempotency_keys,
                    sessions = swept.sessions,
                    verification_tokens = swept.verification_tokens,
                    invitations = swept.invitations,
                    webhook_deliveries = swept.webhook_deliveries,
                    "housekeeping deleted rows that are no longer needed"
                ),
                // Busy: the next sweep does it.
                Err(StoreError::PoolTimedOut) => {}
                Err(err) => {
                    if ctx.db.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %err, "housekeeping cannot delete old rows; trying again in an hour");
                }
            }
        }
    });
}
