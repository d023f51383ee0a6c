//! The one Redis connection of an instance, shared by the cache, the rate limiter and readiness.
//!
//! Every command runs under `TASKLIGHT_REDIS_TIMEOUT_MS`. After a failure the connection is
//! considered down for [`RETRY_AFTER`]: callers fail at once (and use their fallback) instead of
//! each waiting for a dead server, and one call per interval tries again. Readiness pings always
//! try, and a good answer closes the breaker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a failure keeps callers off Redis before one of them tries again.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Why a Redis call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// A recent call failed; not tried.
    #[error("Redis is unavailable (a recent call failed)")]
    Down,
    /// No answer within the timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// See the module documentation.
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    origin: Instant,
    /// Milliseconds since `origin` before which calls fail at once.
    retry_at_ms: AtomicU64,
    down: AtomicBool,
}

impl Redis {
    /// Connects (failing start-up with the variable's name if Redis cannot be reached).
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("REDIS_URL: not a usable Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("REDIS_URL: Redis did not answer within 5 s"))?
        .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect to Redis: {e}"))
        .context("connecting to Redis")?;
        Ok(Arc::new(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            timeout,
            origin: Instant::now(),
            retry_at_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }))
    }

    /// `{prefix}:{suffix}`: every key and channel of this cluster.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// The client, for connections of their own (the pub/sub subscriber).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the last call failed (and no later one succeeded).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Runs `command` on the shared connection, under the timeout, unless Redis failed within
    /// [`RETRY_AFTER`].
    pub async fn call<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.is_down() && self.now_ms() < self.retry_at_ms.load(Ordering::Relaxed) {
            return Err(RedisError::Down);
        }
        self.attempt(command).await
    }

    /// Pings, whatever the breaker says, and reports how long the answer took.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let started = Instant::now();
        self.attempt(|mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await?;
        Ok(started.elapsed())
    }

    async fn attempt<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.timeout, command(self.conn.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(RedisError::Redis(err)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        match &result {
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again");
                }
            }
            // A script or type error is an answer: Redis itself is up.
            Err(RedisError::Redis(err)) if !is_unavailable(err) => {}
            Err(err) => {
                self.retry_at_ms.store(
                    self.now_ms() + RETRY_AFTER.as_millis() as u64,
                    Ordering::Relaxed,
                );
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "Redis is unreachable; using in-process fallbacks until it answers");
                }
            }
        }
        result
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// A client span for one Redis command (`db.system.name = redis`).
pub fn command_span(command: &'static str) -> Option<opentelemetry_sdk::trace::Span> {
    crate::telemetry::span::child(
        command,
        opentelemetry::trace::SpanKind::Client,
        vec![
            opentelemetry::KeyValue::new("db.system.name", "redis"),
            opentelemetry::KeyValue::new("db.operation.name", command),
        ],
    )
}

fn is_unavailable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}
