//! The limit of open event streams per user (`TASKLIGHT_SSE_MAX_STREAMS_PER_USER`), across the
//! cluster when Redis is configured: each stream holds a slot in a sorted set per user, scored by
//! when it lapses, and renews it while it lives; a slot of an instance that died lapses by
//! itself. While Redis is unreachable each instance counts its own streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::redis_client::Redis;

/// How long a slot lasts without renewal.
pub const SLOT_LAPSE: Duration = Duration::from_secs(60);

/// The per-user stream limit of this instance (and, through Redis, of the cluster).
pub struct StreamSlots {
    max: u32,
    local: Mutex<HashMap<Uuid, u32>>,
    redis: Option<Arc<Redis>>,
    script: redis::Script,
}

/// A held slot; released when dropped.
pub struct Slot {
    slots: Arc<StreamSlots>,
    user_id: Uuid,
    id: Uuid,
    shared: bool,
}

impl StreamSlots {
    /// At most `max` streams per user.
    pub fn new(max: u32, redis: Option<Arc<Redis>>) -> Arc<Self> {
        Arc::new(Self {
            max,
            local: Mutex::new(HashMap::new()),
            redis,
            script: redis::Script::new(include_str!("slots.lua")),
        })
    }

    /// A slot for one more stream of `user_id`, or `None` when the user holds the limit.
    pub async fn acquire(self: &Arc<Self>, user_id: Uuid) -> Option<Slot> {
        let id = Uuid::now_v7();
        let shared = match &self.redis {
            Some(redis) => match self.acquire_shared(redis, user_id, id).await {
                Ok(true) => true,
                Ok(false) => return None,
                Err(err) => {
                    tracing::debug!(error = %err, "stream limit counted in process: Redis unreachable");
                    false
                }
            },
            None => false,
        };
        if !shared {
            let mut local = self.local.lock().ok()?;
            let held = local.entry(user_id).or_default();
            if *held >= self.max {
                return None;
            }
            *held += 1;
        }
        Some(Slot {
            slots: self.clone(),
            user_id,
            id,
            shared,
        })
    }

    async fn acquire_shared(
        &self,
        redis: &Redis,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<bool, crate::redis_client::RedisError> {
        let now = now_ms();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(redis.key(&format!("streams:{user_id}")))
            .arg(now)
            .arg(now + SLOT_LAPSE.as_millis() as u64)
            .arg(id.to_string())
            .arg(self.max)
            .arg(SLOT_LAPSE.as_millis() as u64 * 2);
        let added: i64 = redis
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(added == 1)
    }
}

impl Slot {
    /// Keeps the slot from lapsing for another [`SLOT_LAPSE`].
    pub async fn renew(&self) {
        let Some(redis) = self.slots.redis.as_ref().filter(|_| self.shared) else {
            return;
        };
        let key = redis.key(&format!("streams:{}", self.user_id));
        let (member, lapse) = (
            self.id.to_string(),
            now_ms() + SLOT_LAPSE.as_millis() as u64,
        );
        let ttl = SLOT_LAPSE.as_millis() as u64 * 2;
        let _ = redis
            .call(|mut conn| async move {
                redis::pipe()
                    .cmd("ZADD")
                    .arg(&key)
                    .arg("XX")
                    .arg(lapse)
                    .arg(member)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.shared {
            if let Ok(mut local) = self.slots.local.lock()
                && let Some(held) = local.get_mut(&self.user_id)
            {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    local.remove(&self.user_id);
                }
            }
            return;
        }
        let Some(redis) = self.slots.redis.clone() else {
            return;
        };
        let key = redis.key(&format!("streams:{}", self.user_id));
        let member = self.id.to_string();
        // Outside a runtime (a test's teardown) the slot simply lapses.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = redis
                    .call(|mut conn| async move {
                        redis::cmd("ZREM")
                            .arg(key)
                            .arg(member)
                            .query_async::<i64>(&mut conn)
                            .await
                    })
                    .await;
            });
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
