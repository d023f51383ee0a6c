//! A PostgreSQL streaming replica for reads that may be slightly stale (`DATABASE_READ_URL`),
//! and read-your-writes across instances.
//!
//! - **State.** A task reads the primary's WAL position (`pg_current_wal_lsn()`) and the
//!   replica's replay position (`pg_last_wal_replay_lsn()`) every [`POLL`], and keeps the
//!   primary positions it saw with when it saw them. Lag is the age of the oldest primary
//!   position the replica has not replayed yet (0 when it has replayed all of them): how long
//!   ago the primary had written something the replica still does not show, within a poll. (The
//!   age of the replica's last replayed transaction would count the quiet time before a write as
//!   lag.) It is exported (`tasklight_db_replica_lag_seconds`, `tasklight_db_replica_up`) and
//!   shown by readiness.
//! - **Routing.** A read goes to the replica only when the replica answers, its lag is within
//!   `TASKLIGHT_READ_MAX_LAG_MS`, and it has replayed the reader's own last write. Otherwise it
//!   goes to the primary, counted by reason (`tasklight_db_reads_total`).
//! - **Read-your-writes.** After a user's write commits, the primary's WAL position is recorded
//!   as that user's mark (in Redis when configured, so every instance sees it, else in this
//!   process) for `TASKLIGHT_READ_YOUR_WRITES_TTL_MS`. A read by that user on any instance then
//!   waits for nothing: it goes to the primary until the replica's replay position passes the
//!   mark. A mark that cannot be read (Redis down) counts as unknown, and the read goes to the
//!   primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::warm::Warm;
use crate::config::ReadReplicaConfig;
use crate::redis_client::Redis;
use crate::telemetry::metrics::Metrics;

/// How often the replica's position and lag are read.
pub const POLL: Duration = Duration::from_millis(250);

/// A WAL position (`pg_lsn`, `X/Y` in hex) as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// Where a read goes, and why (the index of its reason in
/// [`crate::telemetry::metrics::REPLICA_READ_REASONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The replica is fresh enough for this reader.
    Replica,
    /// The reader's own last write is not replayed there yet.
    OwnWrite,
    /// The replica is behind by more than the allowed lag.
    Lagging,
    /// The replica does not answer.
    Down,
}

impl Route {
    /// The reason's index for the metrics.
    pub fn reason(self) -> usize {
        match self {
            Self::Replica => 0,
            Self::OwnWrite => 1,
            Self::Lagging => 2,
            Self::Down => 3,
        }
    }
}

/// The primary positions seen and not yet replayed, oldest first, with when they were seen.
#[derive(Debug, Default)]
pub struct Unreplayed(std::collections::VecDeque<(u64, std::time::Instant)>);

impl Unreplayed {
    /// Records the primary at `written` and the replica at `replayed` (seen `now`), and
    /// answers the lag: the age of the oldest position not replayed.
    pub fn lag(&mut self, written: u64, replayed: u64, now: std::time::Instant) -> Duration {
        if self.0.back().is_none_or(|(last, _)| written > *last) {
            self.0.push_back((written, now));
        }
        while self
            .0
            .front()
            .is_some_and(|(position, _)| *position <= replayed)
        {
            self.0.pop_front();
        }
        // Bounded: past 10,000 polls (40 minutes) behind, the oldest samples are dropped.
        while self.0.len() > 10_000 {
            self.0.pop_front();
        }
        self.0.front().map_or(Duration::ZERO, |(_, seen)| {
            now.saturating_duration_since(*seen)
        })
    }
}

/// What readiness shows of the replica.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaState {
    /// Whether its last check answered.
    pub up: bool,
    /// Its lag at that check.
    pub lag: Duration,
    /// Whether that lag is over the limit.
    pub lagging: bool,
}

/// The replica: its pool, what the last check found, and the users' write marks.
pub struct Replica {
    pub(super) pool: PgPool,
    pub(super) warm: Arc<Warm<sqlx::Postgres>>,
    max_lag: Duration,
    ttl: Duration,
    up: AtomicBool,
    lag_micros: AtomicU64,
    replayed: AtomicU64,
    redis: Option<Arc<Redis>>,
    local_marks: moka::sync::Cache<Uuid, u64>,
}

/// Keeps the larger of the stored and the new position, and renews the expiry.
const MARK_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

impl Replica {
    /// A pool on the replica; connects lazily, so a replica that is down does not stop
    /// start-up (reads go to the primary until it answers).
    pub fn new(
        config: &ReadReplicaConfig,
        max_connections: u32,
        acquire_timeout: Duration,
        redis: Option<Arc<Redis>>,
    ) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout.min(Duration::from_millis(500)))
            .connect_lazy(&config.url)
            .map_err(|err| anyhow::anyhow!("DATABASE_READ_URL: {err}"))?;
        Ok(Self {
            pool,
            warm: Default::default(),
            max_lag: config.max_lag,
            ttl: config.read_your_writes_ttl,
            up: AtomicBool::new(false),
            lag_micros: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            redis,
            local_marks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.read_your_writes_ttl)
                .build(),
        })
    }

    /// What the last check found.
    pub fn state(&self) -> ReplicaState {
        let lag = Duration::from_micros(self.lag_micros.load(Ordering::Relaxed));
        ReplicaState {
            up: self.up.load(Ordering::Relaxed),
            lag,
            lagging: lag > self.max_lag,
        }
    }

    /// Where a read by a reader whose last write is at `mark` (if known to be none: `Some(0)`;
    /// unknown: `None`) goes.
    pub fn route(&self, mark: Option<u64>) -> Route {
        let state = self.state();
        if !state.up {
            Route::Down
        } else if state.lagging {
            Route::Lagging
        } else {
            match mark {
                Some(mark) if mark <= self.replayed.load(Ordering::Relaxed) => Route::Replica,
                _ => Route::OwnWrite,
            }
        }
    }

    fn mark_key(&self, user: Uuid) -> Option<String> {
        self.redis.as_ref().map(|r| r.key(&format!("ryw:{user}")))
    }

    /// The position of `user`'s last write still remembered: `Some(0)` when there is none,
    /// `None` when it cannot be read.
    pub async fn mark_of(&self, user: Uuid) -> Option<u64> {
        match (&self.redis, self.mark_key(user)) {
            (Some(redis), Some(key)) => {
                let value: Result<Option<u64>, _> = redis
                    .call(|mut conn| async move {
                        redis::cmd("GET").arg(&key).query_async(&mut conn).await
                    })
                    .await;
                value.ok().map(|v| v.unwrap_or(0))
            }
            _ => Some(self.local_marks.get(&user).unwrap_or(0)),
        }
    }

    /// Remembers that `user` wrote up to `position` (a failure is logged: that user's reads may
    /// miss the write on another instance until the replica catches up).
    pub async fn remember(&self, user: Uuid, position: u64) {
        match (&self.redis, self.mark_key(user)) {
            (Some(redis), Some(key)) => {
                let ttl = self.ttl.as_millis() as u64;
                let stored: Result<i64, _> = redis
                    .call(|mut conn| async move {
                        redis::Script::new(MARK_SCRIPT)
                            .key(&key)
                            .arg(position)
                            .arg(ttl)
                            .invoke_async(&mut conn)
                            .await
                    })
                    .await;
                if let Err(err) = stored {
                    tracing::warn!(error = %err, "could not record a write position for read-your-writes");
                }
            }
            _ => {
                let current = self.local_marks.get(&user).unwrap_or(0);
                self.local_marks.insert(user, current.max(position));
            }
        }
    }

    /// Reads the replica's replay position and lag against `primary` every [`POLL`], until the
    /// pool closes.
    pub fn spawn_checks(self: &Arc<Self>, primary: PgPool, metrics: Arc<Metrics>) {
        let replica = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut was_up = None;
            let mut unreplayed = Unreplayed::default();
            loop {
                let Some(replica) = replica.upgrade() else {
                    return;
                };
                if replica.pool.is_closed() || primary.is_closed() {
                    return;
                }
                let checked = tokio::time::timeout(Duration::from_secs(1), replica.check(&primary))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 1 s".into()));
                let up = checked.is_ok();
                match checked {
                    Ok((written, replayed)) => {
                        let lag = unreplayed.lag(written, replayed, std::time::Instant::now());
                        replica.replayed.store(replayed, Ordering::Relaxed);
                        replica
                            .lag_micros
                            .store(lag.as_micros() as u64, Ordering::Relaxed);
                        metrics.replica.set_state(true, lag.as_secs_f64());
                    }
                    Err(ref why) => {
                        if was_up != Some(false) {
                            tracing::warn!(error = %why, "the read replica does not answer; reads go to the primary");
                        }
                        metrics
                            .replica
                            .set_state(false, replica.state().lag.as_secs_f64());
                    }
                }
                if up && was_up == Some(false) {
                    tracing::info!("the read replica answers again");
                }
                replica.up.store(up, Ordering::Relaxed);
                was_up = Some(up);
                drop(replica);
                tokio::time::sleep(POLL).await;
            }
        });
    }

    /// One check: (the primary's position, the replica's replay position).
    async fn check(&self, primary: &PgPool) -> Result<(u64, u64), String> {
        let written: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(primary)
            .await
            .map_err(|e| format!("primary: {e}"))?;
        let written = parse_lsn(&written).ok_or("primary: unreadable position")?;
        let replayed: Option<String> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn()::text")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| format!("replica: {e}"))?;
        let replayed = replayed
            .as_deref()
            .and_then(parse_lsn)
            .ok_or("DATABASE_READ_URL is not a replica in recovery (no replay position)")?;
        Ok((written, replayed))
    }

    /// Counts the replica down at once (a read could not get a connection), so the reads after
    /// it go to the primary without waiting for the next check.
    pub fn failed(&self) {
        self.up.store(false, Ordering::Relaxed);
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.warm.close();
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::{Unreplayed, parse_lsn};
    use std::time::{Duration, Instant};

    #[test]
    fn lag_is_the_age_of_the_oldest_write_not_replayed() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut seen = Unreplayed::default();
        // Idle for a long time, everything replayed: no lag, however old the last write.
        assert_eq!(seen.lag(100, 100, at(0)), Duration::ZERO);
        assert_eq!(seen.lag(100, 100, at(60_000)), Duration::ZERO);
        // A write at 60.25 s, not replayed until 61.75 s: the lag grows from its sighting.
        assert_eq!(seen.lag(200, 100, at(60_250)), Duration::ZERO);
        assert_eq!(seen.lag(300, 100, at(60_500)), Duration::from_millis(250));
        assert_eq!(seen.lag(300, 200, at(61_500)), Duration::from_millis(1_000));
        assert_eq!(seen.lag(300, 300, at(61_750)), Duration::ZERO);
    }

    #[test]
    fn wal_positions_read_as_numbers_in_order() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B3748));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        assert_eq!(parse_lsn("garbage"), None);
        assert_eq!(parse_lsn("0/xyz"), None);
    }
}
