//! `/api/v1/projects/{project_id}/events` (a project's events as `text/event-stream`) and
//! `/api/v1/projects/{project_id}/events/tickets` (single-use tickets that open one from a
//! browser's `EventSource`, which cannot send an `Authorization` header).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use poem::Request;
use poem::web::sse::Event;
use poem_openapi::auth::ApiKey;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{Object, OpenApi, SecurityScheme};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::bearer::BearerAuth;
use crate::error::AppError;
use crate::events::model::EventRecord;
use crate::events::service::{self, Frame, Streams};
use crate::http::problem::ApiError;
use crate::http::tags::Tag;
use crate::state::AppState;

crate::error_set! {
    /// Errors of opening an event stream.
    StreamErrors = [400, 401, 404];
    /// Errors of issuing a stream ticket.
    TicketErrors = [400, 401, 404];
}

/// A single-use stream ticket, in the `ticket` query parameter of the stream's URL.
#[derive(SecurityScheme)]
#[oai(
    rename = "streamTicket",
    ty = "api_key",
    key_in = "query",
    key_name = "ticket",
    checker = "ticket_value"
)]
pub struct StreamTicketAuth(String);

async fn ticket_value(_req: &Request, key: ApiKey) -> Option<String> {
    Some(key.key)
}

/// How a stream is opened: with the bearer token (a fetch-based reader), or with a ticket.
#[derive(SecurityScheme)]
pub enum StreamAuth {
    /// `Authorization: Bearer <access token>`.
    Bearer(BearerAuth),
    /// `?ticket=<ticket>` from `POST /projects/{project_id}/events/tickets`.
    Ticket(StreamTicketAuth),
}

/// One event as a stream sends it: the SSE `id` is the event id, the SSE `event` its type, and
/// the data this document (the same document a webhook receives). Two frames of the stream
/// itself have no id: `stream.resync` (the `Last-Event-ID` sent is no longer in the outbox:
/// reload, then follow) and `stream.end` (`data.reason` says why the stream ends: `drain`,
/// `membership_ended`, `session_ended`, `project_deleted`, `error`).
#[derive(Debug, Object)]
#[oai(rename = "ProjectEvent")]
pub struct EventDocument {
    /// Event id (UUIDv7); the same in every delivery of the event.
    pub id: Uuid,
    /// `task.created`, `task.updated`, `task.deleted`, `comment.created`, `comment.updated`,
    /// `comment.deleted`, `member.added`, `member.role_changed`, `member.removed`,
    /// `project.updated`, `project.deleted`.
    #[oai(
        rename = "type",
        validator(max_length = 64, pattern = "^[a-z_]+\\.[a-z_]+$")
    )]
    pub event_type: String,
    /// When the change happened.
    pub timestamp: DateTime<Utc>,
    /// The project.
    #[oai(nullable)]
    pub project_id: Option<Uuid>,
    /// Who made the change (`null` for the command line).
    #[oai(nullable)]
    pub actor_id: Option<Uuid>,
    /// The request that made the change.
    #[oai(validator(max_length = 128, pattern = "^[A-Za-z0-9._-]{1,128}$|^-$"))]
    pub request_id: String,
    /// The resource after the change (a task, comment, member or project document as the API
    /// shows it); for a deletion, the ids of what was deleted.
    pub data: Value,
}

/// A frame of the stream as sent: the stored event document, not parsed again per stream.
pub struct StreamFrame(Frame);

impl Type for StreamFrame {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        EventDocument::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        EventDocument::schema_ref()
    }

    fn register(registry: &mut Registry) {
        EventDocument::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ToJSON for StreamFrame {
    fn to_json(&self) -> Option<Value> {
        match &self.0 {
            Frame::Event(event) => serde_json::from_str(&event.payload).ok(),
            Frame::Resync => Some(serde_json::json!({ "type": "stream.resync" })),
            Frame::End(reason) => {
                Some(serde_json::json!({ "type": "stream.end", "reason": reason }))
            }
        }
    }
}

/// The SSE frame: `id` and `event` from the event, `data` its stored document.
fn sse_event(frame: StreamFrame) -> Event {
    match frame.0 {
        Frame::Event(event) => event_frame(&event),
        Frame::Resync => Event::message(r#"{"type":"stream.resync"}"#).event_type("stream.resync"),
        Frame::End(reason) => {
            Event::message(format!(r#"{{"type":"stream.end","reason":"{reason}"}}"#))
                .event_type("stream.end")
        }
    }
}

fn event_frame(event: &EventRecord) -> Event {
    Event::message(event.payload.clone())
        .id(event.id.to_string())
        .event_type(event.event_type.clone())
}

/// A stream ticket as issued.
#[derive(Debug, Object)]
pub struct StreamTicket {
    /// The ticket: opens one stream of this project, once, until `expires_at`. Put it in the
    /// `ticket` query parameter; it is worthless after one use.
    #[oai(validator(max_length = 64, pattern = "^[A-Za-z0-9_-]{43}$"))]
    pub ticket: String,
    /// When it stops working (`TASKLIGHT_SSE_TICKET_TTL_SECS` after issue).
    pub expires_at: DateTime<Utc>,
    /// The stream's URL with the ticket, relative to the service's origin.
    #[oai(validator(max_length = 256))]
    pub url: String,
}

/// Live updates.
pub struct EventsApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Events")]
impl EventsApi {
    /// Follow a project's events
    ///
    /// Every change to the project, its members, tasks and comments, as it happens, in
    /// `text/event-stream` (SSE): the SSE `id` is the event id, `event` its type and `data` the
    /// same JSON document a webhook receives. Any member may follow (viewers too). A
    /// reconnecting client sends the last id it saw in `Last-Event-ID` and gets exactly the
    /// events it missed, from any instance, within the outbox's retention (7 days by default);
    /// an id older than that gets a `stream.resync` frame first. Comment lines (`:`) every
    /// `TASKLIGHT_SSE_HEARTBEAT_SECS` keep idle connections open. The stream ends with a
    /// `stream.end` frame when the member is removed, the project deleted, the session ended,
    /// or the instance drains (reconnect then: another instance answers). Browsers authenticate
    /// with a ticket (`POST .../events/tickets`), since `EventSource` cannot send headers; a
    /// fetch-based reader can send the bearer token. At most
    /// `TASKLIGHT_SSE_MAX_STREAMS_PER_USER` streams per user (429 beyond).
    #[oai(
        path = "/projects/:project_id/events",
        method = "get",
        operation_id = "projectEvents"
    )]
    async fn events(
        &self,
        auth: StreamAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// The id of the last event received; the stream starts after it.
        #[oai(
            name = "Last-Event-ID",
            validator(max_length = 64, pattern = "^[0-9A-Za-z-]{1,64}$")
        )]
        last_event_id: Header<Option<String>>,
        /// The same as `Last-Event-ID`, for a new `EventSource` opened with a fresh ticket after
        /// the last one closed (the header wins when both are sent).
        #[oai(
            name = "last_event_id",
            validator(max_length = 64, pattern = "^[0-9A-Za-z-]{1,64}$")
        )]
        last_event_id_param: Query<Option<String>>,
    ) -> Result<EventStream<BoxStream<'static, StreamFrame>>, ApiError<StreamErrors>> {
        let state = &self.state;
        if state.drain.is_draining() {
            return Err(AppError::Unavailable("this instance is shutting down; reconnect").into());
        }
        let principal = match auth {
            StreamAuth::Bearer(bearer) => bearer.0,
            StreamAuth::Ticket(ticket) => {
                let principal =
                    service::redeem_ticket(&state.domain, &ticket.0, project_id.0).await?;
                crate::telemetry::context::set_user(principal.user_id);
                principal
            }
        };
        let drain = state.drain.clone();
        let frames = service::open(
            Streams {
                ctx: &state.domain,
                feed: &state.feed,
                slots: &state.stream_slots,
            },
            &principal,
            project_id.0,
            last_event_id
                .0
                .as_deref()
                .or(last_event_id_param.0.as_deref()),
            Box::pin(async move { drain.started().await }),
        )
        .await?;
        let stream = futures_util::stream::unfold(frames, |mut frames| async move {
            frames
                .recv()
                .await
                .map(|frame| (StreamFrame(frame), frames))
        })
        .boxed();
        Ok(EventStream::new(stream)
            .keep_alive(state.config.events.heartbeat)
            .to_event(sse_event))
    }

    /// Get a stream ticket
    ///
    /// A single-use ticket that opens one stream of this project's events as the caller, in the
    /// caller's session, within `TASKLIGHT_SSE_TICKET_TTL_SECS` (60 s by default): for a
    /// browser's `EventSource`, which cannot send an `Authorization` header. Only the ticket's
    /// SHA-256 is stored; it is not an access token and opens nothing else.
    #[oai(
        path = "/projects/:project_id/events/tickets",
        method = "post",
        operation_id = "createStreamTicket"
    )]
    async fn ticket(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
    ) -> Result<Json<StreamTicket>, ApiError<TicketErrors>> {
        let state = &self.state;
        let issued = service::issue_ticket(
            &state.domain,
            &auth.0,
            project_id.0,
            state.config.events.ticket_ttl,
        )
        .await?;
        Ok(Json(StreamTicket {
            url: format!(
                "/api/v1/projects/{}/events?ticket={}",
                project_id.0, issued.ticket
            ),
            ticket: issued.ticket,
            expires_at: issued.expires_at,
        }))
    }
}
