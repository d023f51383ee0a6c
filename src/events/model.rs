//! What an event is: the document delivered to webhooks and streams, and its place in the
//! outbox.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Where an event sits in the outbox: the writing transaction's id, then the order of
/// insertion. Every reader goes through positions in increasing order, and no event can appear
/// later behind a position already read (see [`crate::events::store`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The writing transaction's id (0 on SQLite).
    pub tx_id: i64,
    /// Insertion order.
    pub seq: i64,
}

/// The document a webhook receives as its body and a stream as an event's data. Its fields
/// follow the Standard Webhooks payload (`type`, `timestamp`, `data`), with the ids a receiver
/// needs to deduplicate and to find the request that caused it.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// The event id (UUIDv7), the same in every delivery of it (the `webhook-id` header too).
    pub id: Uuid,
    /// `task.created`, `task.updated`, ...
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// When the change happened (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// The project the change belongs to.
    pub project_id: Option<Uuid>,
    /// Who made the change (`null` for the command line).
    pub actor_id: Option<Uuid>,
    /// The `X-Request-Id` of the request that made it.
    pub request_id: &'a str,
    /// The resource after the change (for a deletion, what identifies what was deleted).
    pub data: &'a Value,
}

/// One event as stored.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// Its place in the outbox (assigned by the database on insert).
    pub position: Position,
    /// `task.created`, `member.removed`, ...
    pub event_type: String,
    /// The project it belongs to; `None` for changes to users.
    pub project_id: Option<Uuid>,
    /// Who made the change.
    pub actor_id: Option<Uuid>,
    /// The kind of entity changed.
    pub entity_type: String,
    /// Its id (for `member`, the member's user id).
    pub entity_id: Uuid,
    /// The [`Envelope`] as JSON text, exactly as delivered.
    pub payload: String,
    /// The request that made the change (`-` outside a request).
    pub request_id: String,
    /// The W3C `traceparent` of that request, when it had a trace.
    pub traceparent: Option<String>,
    /// Its `tracestate`, if any.
    pub tracestate: Option<String>,
    /// The instance that served the request.
    pub instance_id: String,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
}

/// The event types a project's streams and webhooks carry (changes to users and invitations
/// are in the outbox too, but belong to no project's feed: an invitation names an email
/// address, which a viewer of the project must not learn).
pub const PROJECT_EVENT_TYPES: &[&str] = &[
    "project.created",
    "project.updated",
    "project.deleted",
    "member.added",
    "member.role_changed",
    "member.removed",
    "task.created",
    "task.updated",
    "task.deleted",
    "comment.created",
    "comment.updated",
    "comment.deleted",
];

/// Whether `event_type` is one a project's feed carries.
pub fn is_project_event(event_type: &str) -> bool {
    PROJECT_EVENT_TYPES.contains(&event_type)
}
