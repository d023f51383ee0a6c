//! The Redis side of the cache: GET/SET with a TTL, DEL + PUBLISH for invalidation, and the
//! subscriber that evicts L1 entries when another instance changes them. Every command gets a
//! client span (`db.system.name = redis`).

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use redis::aio::ConnectionManager;

use super::{Cache, RESUBSCRIBE_DELAY};

/// Pause before subscribing again after a working subscription dropped (no hot loop if it
/// keeps dropping).
const DROPPED_RETRY_DELAY: Duration = Duration::from_millis(50);
use crate::telemetry::span;

/// The shared layer.
pub struct RedisLayer {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    channel: String,
    ttl_secs: u64,
}

fn command_span(command: &'static str) -> Option<opentelemetry_sdk::trace::Span> {
    span::child(
        command,
        SpanKind::Client,
        vec![
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("db.operation.name", command),
        ],
    )
}

impl RedisLayer {
    /// Connects (failing start-up with the variable's name if Redis cannot be reached).
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("REDIS_URL: not a usable Redis URL: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager())
            .await
            .map_err(|_| anyhow::anyhow!("REDIS_URL: Redis did not answer within 5 s"))?
            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect to Redis: {e}"))?;
        Ok(Self {
            client,
            conn,
            prefix: format!("{prefix}:cache:"),
            channel: format!("{prefix}:cache-invalidations"),
            ttl_secs: ttl.as_secs().max(1),
        })
    }

    /// The value under `key`, if Redis has it.
    pub async fn get(&self, key: &str) -> redis::RedisResult<Option<Vec<u8>>> {
        let _span = command_span("GET");
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut conn)
            .await
    }

    /// Stores `value` under `key` for the L2 TTL.
    pub async fn set(&self, key: &str, value: &[u8]) -> redis::RedisResult<()> {
        let _span = command_span("SET");
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(value)
            .arg("EX")
            .arg(self.ttl_secs)
            .query_async(&mut conn)
            .await
    }

    /// Deletes `keys` and publishes each on the invalidation channel, in one round trip.
    pub async fn invalidate(&self, keys: &[String]) -> redis::RedisResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let _span = command_span("DEL+PUBLISH");
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(
                keys.iter()
                    .map(|k| format!("{}{k}", self.prefix))
                    .collect::<Vec<_>>(),
            )
            .ignore();
        for key in keys {
            pipe.cmd("PUBLISH").arg(&self.channel).arg(key).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }

    /// Subscribes in the background for as long as the cache lives; every (re)subscription
    /// flushes L1, because invalidations may have been missed while it was down.
    pub fn subscribe(&self, cache: Weak<Cache>) {
        let client = self.client.clone();
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
