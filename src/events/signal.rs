//! "Events were committed": how an instance's feed learns that the outbox has something new,
//! from its own writes at once and from other instances' through Redis pub/sub. A signal only
//! wakes the feed, which then reads the outbox; a lost signal delays an event by at most the
//! feed's poll interval and never loses it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::redis_client::Redis;

/// Pause before subscribing again after the subscription failed or dropped.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

/// The wake-up of this instance's event feed.
pub struct EventSignal {
    local: Notify,
    redis: Option<Arc<Redis>>,
    channel: String,
}

impl EventSignal {
    /// A signal, shared with other instances through `redis` when there is one.
    pub fn new(redis: Option<Arc<Redis>>) -> Arc<Self> {
        let channel = redis
            .as_ref()
            .map(|r| r.key("events-committed"))
            .unwrap_or_default();
        Arc::new(Self {
            local: Notify::new(),
            redis,
            channel,
        })
    }

    /// A transaction that wrote events has committed: wakes this instance's feed, and every
    /// other instance's (the PUBLISH goes out in the background, off the request's path).
    pub fn committed(&self) {
        self.local.notify_one();
        if let Some(redis) = &self.redis {
            let (redis, channel) = (redis.clone(), self.channel.clone());
            tokio::spawn(async move {
                let published = redis
                    .call(|mut conn| async move {
                        redis::cmd("PUBLISH")
                            .arg(channel)
                            .arg("1")
                            .query_async::<i64>(&mut conn)
                            .await
                    })
                    .await;
                if let Err(err) = published {
                    tracing::debug!(error = %err, "events signal not published; other instances poll");
                }
            });
        }
    }

    /// Waits for the next signal (one that came while nobody waited counts).
    pub async fn notified(&self) {
        self.local.notified().await;
    }

    /// Listens on Redis for other instances' signals, for as long as the signal lives.
    pub fn subscribe(self: &Arc<Self>) {
        let Some(redis) = &self.redis else { return };
        let client = redis.client().clone();
        let weak = Arc::downgrade(self);
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
                match subscribed {
                    Ok(mut pubsub) => {
                        if failing {
                            tracing::info!("events subscription restored");
                            failing = false;
                        }
                        // Whatever was published while unsubscribed is read by the next poll;
                        // wake the feed now instead.
                        let Some(signal) = weak.upgrade() else { return };
                        signal.local.notify_one();
                        drop(signal);
                        let mut messages = pubsub.on_message();
                        while messages.next().await.is_some() {
                            let Some(signal) = weak.upgrade() else { return };
                            signal.local.notify_one();
                        }
                    }
                    Err(err) => {
                        if !failing {
                            tracing::warn!(error = %err, "events subscription lost; new events of other instances arrive by polling until it is back");
                            failing = true;
                        }
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
            }
        });
    }
}
