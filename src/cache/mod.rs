//! The two-level cache: moka in each instance (L1, short TTL, bounded) in front of Redis (L2,
//! shared, longer TTL) in front of the database.
//!
//! Every write replaces the L2 key with a tombstone for two seconds (a load that read the
//! database before the write cannot store its stale value over it) and publishes the key on a
//! Redis channel; each instance's subscriber evicts its L1 entry. When the subscription drops and comes back, L1 is flushed,
//! since messages may have been lost; the L1 TTL bounds staleness meanwhile. Concurrent misses for
//! one key run one load. Without `REDIS_URL`, the cache is L1 only and invalidates locally.

mod redis_layer;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::redis_client::Redis;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::span;
use redis_layer::RedisLayer;

type Value = Arc<dyn Any + Send + Sync>;

/// The cache of one instance.
pub struct Cache {
    l1: moka::future::Cache<String, Value, foldhash::fast::RandomState>,
    l2: Option<RedisLayer>,
    metrics: Arc<Metrics>,
}

impl Cache {
    /// L1 only, or L1 over Redis when `REDIS_URL` is set (subscribing to invalidations in the
    /// background).
    pub fn new(config: &Config, redis: Option<Arc<Redis>>, metrics: Arc<Metrics>) -> Arc<Self> {
        let l1 = moka::future::Cache::builder()
            .max_capacity(config.cache_l1_capacity)
            .time_to_live(config.cache_l1_ttl)
            .build_with_hasher(foldhash::fast::RandomState::default());
        let l2 = redis.map(|redis| RedisLayer::new(redis, config.cache_l2_ttl));
        let cache = Arc::new(Self { l1, l2, metrics });
        if let Some(l2) = &cache.l2 {
            l2.subscribe(Arc::downgrade(&cache));
        }
        cache
    }

    /// Entries in L1 now (for the metrics).
    pub fn l1_entries(&self) -> u64 {
        self.l1.entry_count()
    }

    /// The value under `key` from L1, else L2, else `load` (the database), filling the layers
    /// above on the way back. Concurrent misses for one key share one load.
    ///
    /// An L1 hit takes the short path and never builds the miss path's future: that future holds
    /// the Redis and database futures (several KiB), and every layer above that awaited it used
    /// to copy it on each request (profiled: about 15 KB of `memcpy` per cached lookup).
    pub async fn get_or_load<T, Fut>(
        &self,
        cache: &'static str,
        key: String,
        load: impl FnOnce() -> Fut + Send,
    ) -> AppResult<T>
    where
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
        Fut: Future<Output = AppResult<T>> + Send,
    {
        let (value, hit) = match self.l1.get(&key).await {
            Some(value) => (value, true),
            None => Box::pin(self.load_through(cache, &key, load)).await?,
        };
        self.metrics
            .cache_request(cache, "l1", if hit { "hit" } else { "miss" });
        if hit {
            crate::telemetry::context::with(|c| {
                c.cache_l1_hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            });
        }
        value.downcast_ref::<T>().cloned().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("cache entry {key} has another type"))
        })
    }

    /// The miss path of [`Cache::get_or_load`]: L2, else the database, through moka's entry API
    /// so that concurrent misses share one load. Returns the value and whether another caller
    /// filled L1 meanwhile (a hit).
    async fn load_through<T, Fut>(
        &self,
        cache: &'static str,
        key: &str,
        load: impl FnOnce() -> Fut,
    ) -> AppResult<(Value, bool)>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        Fut: Future<Output = AppResult<T>>,
    {
        let entry = self
            .l1
            .entry_by_ref(key)
            .or_try_insert_with(async {
                // Only lookups that leave the process get a span; L1 hits are counted on the
                // server span (`cache.l1_hits`) and in the metrics.
                let mut lookup = span::child(
                    format!("cache.get {cache}"),
                    opentelemetry::trace::SpanKind::Internal,
                    vec![opentelemetry::KeyValue::new("cache.name", cache)],
                );
                let mut found = |layer: &'static str| {
                    if let Some(span) = lookup.as_mut() {
                        use opentelemetry::trace::Span as _;
                        span.set_attribute(opentelemetry::KeyValue::new("cache.layer", layer));
                        span.set_attribute(opentelemetry::KeyValue::new(
                            "cache.hit",
                            layer == "l2",
                        ));
                    }
                };
                if let Some(l2) = &self.l2 {
                    match l2.get(key).await {
                        Ok(Some(bytes)) => {
                            if let Ok(value) = serde_json::from_slice::<T>(&bytes) {
                                self.metrics.cache_request(cache, "l2", "hit");
                                found("l2");
                                return Ok::<Value, AppError>(Arc::new(value));
                            }
                            self.metrics.cache_request(cache, "l2", "miss");
                        }
                        Ok(None) => self.metrics.cache_request(cache, "l2", "miss"),
                        Err(_) => self.metrics.cache_request(cache, "l2", "error"),
                    }
                }
                found("db");
                let value = load().await?;
                if let (Some(l2), Ok(bytes)) = (&self.l2, serde_json::to_vec(&value)) {
                    let _ = l2.set(key, &bytes).await;
                }
                Ok(Arc::new(value))
            })
            .await
            .map_err(|shared| Arc::try_unwrap(shared).unwrap_or_else(|e| e.duplicate()))?;
        let hit = !entry.is_fresh();
        Ok((entry.into_value(), hit))
    }

    /// Evicts `keys` here, deletes them from Redis and tells every other instance to evict them.
    /// Called after the change that makes them stale has committed.
    pub async fn invalidate(&self, keys: &[String]) {
        for key in keys {
            self.l1.invalidate(key).await;
        }
        if let Some(l2) = &self.l2
            && l2.invalidate(keys).await.is_ok()
        {
            self.metrics.cache_invalidations("sent", keys.len() as u64);
        }
    }

    /// Evicts one key from L1 (a message from another instance).
    async fn evict_local(&self, key: &str) {
        self.l1.invalidate(key).await;
        self.metrics.cache_invalidations("received", 1);
    }

    /// Drops all of L1 (after the invalidation subscription was lost and is back).
    fn flush_local(&self) {
        self.l1.invalidate_all();
    }
}

/// Keys, in one place so writers and readers agree.
pub mod keys {
    use uuid::Uuid;

    /// A user's public profile, with their role and disabled status.
    pub fn user(id: Uuid) -> String {
        format!("user:{id}")
    }

    /// A login session's state.
    pub fn session(id: Uuid) -> String {
        format!("session:{id}")
    }

    /// A project (without anyone's role).
    pub fn project(id: Uuid) -> String {
        format!("project:{id}")
    }

    /// A task with its tags.
    pub fn task(id: Uuid) -> String {
        format!("task:{id}")
    }

    /// A user's role in a project.
    pub fn member(project_id: Uuid, user_id: Uuid) -> String {
        format!("member:{project_id}:{user_id}")
    }
}

/// How long to wait before trying again when subscribing to invalidations fails.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);
