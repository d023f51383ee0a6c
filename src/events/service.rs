//! The live event streams of a project (`GET /projects/{project_id}/events`): who may open one,
//! where it starts (`Last-Event-ID`), and what it sends until it ends.
//!
//! A stream first reads the outbox from where the client left off (catch-up), then follows this
//! instance's [`Feed`]; it subscribes to the feed before catching up, and skips what it already
//! sent, so nothing falls between the two. It ends when the client goes, when the instance
//! drains, when the member is removed or the project deleted (at once, from the event), and when
//! the session ends or the membership is found gone by the check it makes every
//! [`CHECK_INTERVAL`] (from the cache, which every instance invalidates on such changes).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::feed::{Feed, FeedEvent};
use super::model::{EventRecord, Position, is_project_event};
use super::slots::{SLOT_LAPSE, Slot, StreamSlots};
use super::store::StreamTicket;
use crate::auth::Principal;
use crate::auth::service::session_principal;
use crate::auth::tokens::{hash_single_use_token, new_single_use_token};
use crate::domain::DomainContext;
use crate::error::{AppError, AppResult};
use crate::projects::service::cached_role;

/// How often a stream checks its session and membership again.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Events read from the outbox per statement while catching up.
const CATCH_UP_BATCH: u32 = 500;
/// Frames a stream may hold for a slow client before it is treated as gone.
const BUFFER: usize = 256;

/// What a stream sends.
pub enum Frame {
    /// An event of the project.
    Event(Arc<EventRecord>),
    /// The `Last-Event-ID` the client sent is not in the outbox (older than the retention, or
    /// not an event): events may have been missed, so reload, then follow from here.
    Resync,
    /// The stream ends, and why.
    End(&'static str),
}

/// What opening a stream needs besides the request.
pub struct Streams<'a> {
    /// Database, cache, metrics.
    pub ctx: &'a DomainContext,
    /// This instance's feed.
    pub feed: &'a Arc<Feed>,
    /// The per-user limit.
    pub slots: &'a Arc<StreamSlots>,
}

/// A ticket for one stream, as issued.
pub struct IssuedTicket {
    /// The ticket (shown once; only its SHA-256 is stored).
    pub ticket: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Issues a single-use ticket that opens one stream of `project_id` as the caller, in the
/// caller's session, within `ttl` (any member of the project).
pub async fn issue_ticket(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    ttl: Duration,
) -> AppResult<IssuedTicket> {
    cached_role(ctx, project_id, principal.user_id, None).await?;
    let (ticket, token_hash) = new_single_use_token();
    let expires_at = crate::db::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    ctx.read()
        .await?
        .insert_stream_ticket(&StreamTicket {
            token_hash,
            user_id: principal.user_id,
            session_id: principal.session_id,
            project_id,
            expires_at,
        })
        .await?;
    Ok(IssuedTicket { ticket, expires_at })
}

/// Uses a ticket for `project_id`: the principal it was issued to, if it is unused, unexpired,
/// for this project, and its session still alive. A ticket is gone after one attempt.
pub async fn redeem_ticket(
    ctx: &DomainContext,
    ticket: &str,
    project_id: Uuid,
) -> AppResult<Principal> {
    const INVALID: &str = "the stream ticket is unknown, used, expired or for another project";
    let found = ctx
        .read()
        .await?
        .take_stream_ticket(&hash_single_use_token(ticket))
        .await?
        .filter(|t| t.expires_at > crate::db::now() && t.project_id == project_id)
        .ok_or(AppError::Unauthorized(INVALID))?;
    session_principal(ctx, found.user_id, found.session_id).await
}

/// Opens a stream of `project_id`'s events for `principal` (any member), after the event
/// `last_event_id` when given. `stop` completes when the instance starts draining. The frames
/// come through the receiver; the stream ends when it is dropped.
pub async fn open(
    streams: Streams<'_>,
    principal: &Principal,
    project_id: Uuid,
    last_event_id: Option<&str>,
    stop: BoxFuture<'static, ()>,
) -> AppResult<mpsc::Receiver<Frame>> {
    let ctx = streams.ctx;
    cached_role(ctx, project_id, principal.user_id, None).await?;
    let slot = streams
        .slots
        .acquire(principal.user_id)
        .await
        .ok_or_else(|| {
            ctx.metrics.events.streams_refused.increment(1);
            AppError::TooMany(
                "this account already holds the most event streams allowed \
                 (TASKLIGHT_SSE_MAX_STREAMS_PER_USER); close one first",
            )
        })?;
    // Subscribe before reading anything, so that no event falls between catch-up and live.
    let (live, published) = streams.feed.subscribe();
    let resume = match last_event_id.map(str::trim).filter(|id| !id.is_empty()) {
        None => Ok(published),
        Some(id) => match Uuid::parse_str(id) {
            Ok(id) => ctx.read().await?.event_position(id).await?.ok_or(published),
            Err(_) => Err(published),
        },
    };
    let (sender, receiver) = mpsc::channel(BUFFER);
    let (start, resync) = match resume {
        Ok(position) => (position, false),
        Err(position) => (position, true),
    };
    if resync {
        let _ = sender.try_send(Frame::Resync);
    }
    ctx.metrics.events.streams_opened.increment(1);
    ctx.metrics.events.streams_open.increment(1.0);
    let stream = Stream {
        ctx: ctx.clone(),
        user_id: principal.user_id,
        session_id: principal.session_id,
        project_id,
        sender,
        sent_up_to: start,
        slot,
    };
    tokio::spawn(async move {
        let reason = stream.run(live, stop).await;
        stream.ctx.metrics.events.streams_open.decrement(1.0);
        stream.ctx.metrics.events.stream_ended(reason);
        if reason != "client_gone" {
            let _ = stream.sender.try_send(Frame::End(reason));
        }
    });
    Ok(receiver)
}

/// One open stream.
struct Stream {
    ctx: DomainContext,
    user_id: Uuid,
    session_id: Uuid,
    project_id: Uuid,
    sender: mpsc::Sender<Frame>,
    sent_up_to: Position,
    slot: Slot,
}

impl Stream {
    /// Sends until the stream ends; returns why it ended.
    async fn run(
        &self,
        mut live: broadcast::Receiver<Arc<FeedEvent>>,
        mut stop: BoxFuture<'static, ()>,
    ) -> &'static str {
        let mut sent_up_to = self.sent_up_to;
        if let Err(reason) = self.catch_up(&mut sent_up_to).await {
            return reason;
        }
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        let mut renew = tokio::time::interval(SLOT_LAPSE / 3);
        renew.tick().await;
        loop {
            tokio::select! {
                () = &mut stop => return "drain",
                received = live.recv() => match received {
                    Ok(item) => {
                        if item.event.project_id != Some(self.project_id)
                            || item.event.position <= sent_up_to
                        {
                            continue;
                        }
                        sent_up_to = item.event.position;
                        let event = Arc::new(item.event.clone());
                        if let Err(reason) = self.send(event).await {
                            return reason;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Err(reason) = self.catch_up(&mut sent_up_to).await {
                            return reason;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return "error",
                },
                _ = check.tick() => {
                    if self.sender.is_closed() {
                        return "client_gone";
                    }
                    if let Some(reason) = self.still_allowed().await {
                        return reason;
                    }
                }
                _ = renew.tick() => self.slot.renew().await,
            }
        }
    }

    /// Sends every event of the project after `sent_up_to` that the outbox holds.
    async fn catch_up(&self, sent_up_to: &mut Position) -> Result<(), &'static str> {
        loop {
            let events = async {
                self.ctx
                    .read()
                    .await?
                    .events_after(*sent_up_to, Some(self.project_id), CATCH_UP_BATCH)
                    .await
            }
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "event stream cannot read the outbox");
                "error"
            })?;
            let count = events.len();
            for event in events {
                *sent_up_to = event.position;
                self.send(Arc::new(event)).await?;
            }
            if count < CATCH_UP_BATCH as usize {
                return Ok(());
            }
        }
    }

    /// Sends one event if the stream carries its type; ends the stream after an event that
    /// takes the member out of the project.
    async fn send(&self, event: Arc<EventRecord>) -> Result<(), &'static str> {
        if !is_project_event(&event.event_type) {
            return Ok(());
        }
        let ends = match event.event_type.as_str() {
            "member.removed" if event.entity_id == self.user_id => Some("membership_ended"),
            "project.deleted" => Some("project_deleted"),
            _ => None,
        };
        let age = (crate::db::now() - event.occurred_at)
            .num_microseconds()
            .unwrap_or(0);
        if self.sender.send(Frame::Event(event)).await.is_err() {
            return Err("client_gone");
        }
        self.ctx.metrics.events.sent(age.max(0) as f64 / 1e6);
        ends.map_or(Ok(()), Err)
    }

    /// `None` while the session is alive and the user still a member; else why not.
    async fn still_allowed(&self) -> Option<&'static str> {
        // A database or cache hiccup is no reason to end the stream; the next check decides.
        if let Err(AppError::Unauthorized(_)) =
            session_principal(&self.ctx, self.user_id, self.session_id).await
        {
            return Some("session_ended");
        }
        match cached_role(&self.ctx, self.project_id, self.user_id, None).await {
            Err(AppError::NotFound(_)) => Some("membership_ended"),
            Err(_) | Ok(_) => None,
        }
    }
}
