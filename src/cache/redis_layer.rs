//! The Redis side of the cache: GET/SET with a TTL, tombstone + PUBLISH for invalidation, and the
//! subscriber that evicts L1 entries when another instance changes them. Every command gets a
//! client span (`db.system.name = redis`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::{Cache, RESUBSCRIBE_DELAY};

/// How long an invalidated key refuses new values (longer than any load takes).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(2);

/// Pause before subscribing again after a working subscription dropped (no hot loop if it
/// keeps dropping).
const DROPPED_RETRY_DELAY: Duration = Duration::from_millis(50);
use crate::redis_client::{Redis, RedisError, command_span};

/// The shared layer.
pub struct RedisLayer {
    redis: Arc<Redis>,
    prefix: String,
    channel: String,
    ttl_secs: u64,
}

impl RedisLayer {
    /// The cache's keys and channel on the shared connection.
    pub fn new(redis: Arc<Redis>, ttl: Duration) -> Self {
        Self {
            prefix: redis.key("cache:"),
            channel: redis.key("cache-invalidations"),
            redis,
            ttl_secs: ttl.as_secs().max(1),
        }
    }

    /// The value under `key`, if Redis has it (a tombstone counts as absent).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        let _span = command_span("GET");
        let key = format!("{}{key}", self.prefix);
        let value: Option<Vec<u8>> = self
            .redis
            .call(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await?;
        Ok(value.filter(|v| !v.is_empty()))
    }

    /// Stores `value` under `key` for the L2 TTL, unless the key exists: in particular unless
    /// it was invalidated within [`TOMBSTONE_TTL`], so a load that read the database before a
    /// change committed cannot put its stale value back after the change's invalidation.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), RedisError> {
        let _span = command_span("SET");
        let key = format!("{}{key}", self.prefix);
        let ttl = self.ttl_secs;
        self.redis
            .call(|mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("EX")
                    .arg(ttl)
                    .arg("NX")
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
    }

    /// Replaces each of `keys` with a short-lived tombstone and publishes it on the
    /// invalidation channel, in one round trip.
    pub async fn invalidate(&self, keys: &[String]) -> Result<(), RedisError> {
        if keys.is_empty() {
            return Ok(());
        }
        let _span = command_span("SET+PUBLISH");
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(format!("{}{key}", self.prefix))
                .arg("")
                .arg("PX")
                .arg(TOMBSTONE_TTL.as_millis() as u64)
                .ignore();
        }
        for key in keys {
            pipe.cmd("PUBLISH").arg(&self.channel).arg(key).ignore();
        }
        self.redis
            .call(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// Subscribes in the background for as long as the cache lives; every (re)subscription
    /// flushes L1, because invalidations may have been missed while it was down.
    pub fn subscribe(&self, cache: Weak<Cache>) {
        let client = self.redis.client().clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                }
                .await;
                let delay = match subscribed {
                    Ok(mut pubsub) => {
                        let Some(live) = cache.upgrade() else { return };
                        live.flush_local();
                        drop(live);
                        if failing {
                            tracing::info!("cache invalidation subscription restored; L1 flushed");
                            failing = false;
                        }
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Some(live) = cache.upgrade() else { return };
                            if let Ok(key) = message.get_payload::<String>() {
                                live.evict_local(&key).await;
                            }
                        }
                        // The connection dropped: subscribe again at once (and flush), so the
                        // window in which messages can be missed stays short.
                        DROPPED_RETRY_DELAY
                    }
                    Err(err) => {
                        if !failing {
                            tracing::warn!(error = %err, "cache invalidation subscription lost; L1 entries expire by TTL until it is back");
                            failing = true;
                        }
                        RESUBSCRIBE_DELAY
                    }
                };
                if cache.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        });
    }
}
