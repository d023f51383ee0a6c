//! This instance's feed of events: one task reads the outbox in position order and hands each
//! event to every local subscriber (the open event streams). It reads when a commit wakes it
//! (its own instance's at once, other instances' through Redis pub/sub) and, failing that,
//! every `TASKLIGHT_EVENT_POLL_MS`. Each instance reads each event once, however many streams
//! it serves.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use super::model::{EventRecord, Position};
use crate::config::EventsConfig;
use crate::db::StoreResult;
use crate::domain::DomainContext;

/// Events read per statement.
const BATCH: u32 = 500;
/// Events a subscriber may fall behind by before it must catch up from the outbox.
const CAPACITY: usize = 4096;
/// First retry after a wake that found nothing readable yet (on PostgreSQL an event becomes
/// readable only once every older transaction has ended); doubled up to [`QUICK_RETRY_MAX`].
const QUICK_RETRY: Duration = Duration::from_millis(5);
const QUICK_RETRY_MAX: Duration = Duration::from_millis(320);
/// How often old events are swept from the outbox.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// An event as the feed hands it out, with when this instance read it.
pub struct FeedEvent {
    /// The event.
    pub event: EventRecord,
    /// When the feed read it from the outbox.
    pub read_at: Instant,
}

/// The feed: subscribe, and read the position it has published up to.
pub struct Feed {
    sender: broadcast::Sender<Arc<FeedEvent>>,
    position: watch::Sender<Position>,
}

impl Feed {
    /// Starts reading after the last readable event of the outbox. The task ends when the feed
    /// is dropped or the database closed.
    pub async fn start(ctx: DomainContext, config: &EventsConfig) -> StoreResult<Arc<Self>> {
        let head = ctx.read().await?.head_position().await?;
        let (sender, _) = broadcast::channel(CAPACITY);
        let feed = Arc::new(Self {
            sender,
            position: watch::Sender::new(head),
        });
        tokio::spawn(run(
            Arc::downgrade(&feed),
            ctx,
            head,
            config.poll_interval,
            config.retention,
        ));
        Ok(feed)
    }

    /// A receiver of every event published from now on, and the position published so far:
    /// every event up to it is readable in the outbox, every later one comes through the
    /// receiver (unless it lags, see [`broadcast::error::RecvError::Lagged`]).
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<FeedEvent>>, Position) {
        let receiver = self.sender.subscribe();
        (receiver, *self.position.borrow())
    }

    /// The position published so far.
    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

async fn run(
    feed: Weak<Feed>,
    ctx: DomainContext,
    mut position: Position,
    poll: Duration,
    retention: Duration,
) {
    let mut quick: Option<Duration> = None;
    let mut last_sweep = Instant::now();
    let mut failing = false;
    loop {
        let woke = tokio::select! {
            () = ctx.events.notified() => true,
            () = tokio::time::sleep(quick.unwrap_or(poll)) => false,
        };
        let Some(live) = feed.upgrade() else { return };
        match read_new(&live, &ctx, &mut position).await {
            Ok(read) => {
                if failing {
                    tracing::info!("event feed reads the outbox again");
                    failing = false;
                }
                quick = match (read, woke, quick) {
                    (0, true, _) => Some(QUICK_RETRY),
                    (0, false, Some(delay)) => Some(delay * 2).filter(|d| *d <= QUICK_RETRY_MAX),
                    _ => None,
                };
            }
            Err(err) => {
                if ctx.db.is_closed() {
                    return;
                }
                if !failing {
                    tracing::warn!(error = %err, "event feed cannot read the outbox; retrying");
                    failing = true;
                }
                quick = None;
            }
        }
        drop(live);
        if last_sweep.elapsed() >= SWEEP_INTERVAL {
            last_sweep = Instant::now();
            sweep(&ctx, retention).await;
        }
    }
}

/// Publishes every readable event after `position`; returns how many.
async fn read_new(feed: &Feed, ctx: &DomainContext, position: &mut Position) -> StoreResult<usize> {
    let mut store = ctx.read().await?;
    let mut total = 0;
    loop {
        let events = store.events_after(*position, None, BATCH).await?;
        let count = events.len();
        let read_at = Instant::now();
        for event in events {
            *position = event.position;
            let lag = (crate::db::now() - event.occurred_at)
                .num_microseconds()
                .unwrap_or(0);
            ctx.metrics.events.read(lag.max(0) as f64 / 1e6);
            // No subscriber is no error: the event is in the outbox for whoever comes later.
            let _ = feed.sender.send(Arc::new(FeedEvent { event, read_at }));
        }
        feed.position.send_replace(*position);
        total += count;
        if count < BATCH as usize {
            return Ok(total);
        }
    }
}

/// Deletes events older than the retention, in batches.
async fn sweep(ctx: &DomainContext, retention: Duration) {
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return;
    };
    let before = crate::db::now() - retention;
    let mut deleted = 0;
    loop {
        let batch = async { ctx.read().await?.delete_events_before(before, 1_000).await }.await;
        match batch {
            Ok(n) => {
                deleted += n;
                if n < 1_000 {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot sweep old events");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "events older than the retention deleted");
    }
    let tickets = async {
        ctx.read()
            .await?
            .delete_expired_stream_tickets(crate::db::now())
            .await
    }
    .await;
    if let Err(err) = tickets {
        tracing::warn!(error = %err, "cannot sweep expired stream tickets");
    }
}
