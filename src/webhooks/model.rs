//! Webhook subscriptions, deliveries and attempts as the API shows them.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use uuid::Uuid;

use super::store::{AttemptRecord, DeliveryRecord, WebhookRecord};

/// The longest destination URL.
pub const URL_MAX: usize = 2048;
/// The longest description.
pub const DESCRIPTION_MAX: usize = 500;

/// The state of an endpoint's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Circuit {
    /// Deliveries go out.
    Closed,
    /// Too many consecutive failures: nothing is sent until `circuit_retry_at`.
    Open,
    /// One probe is on its way; its result closes or reopens the circuit.
    HalfOpen,
}

impl Circuit {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// From storage.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

/// A project's webhook subscription (without its secret).
#[derive(Debug, Clone, Object)]
pub struct Webhook {
    /// Subscription id.
    pub id: Uuid,
    /// The project whose events it receives.
    pub project_id: Uuid,
    /// Where deliveries are POSTed (`https`).
    #[oai(validator(max_length = 2048))]
    pub url: String,
    /// What it is for.
    #[oai(validator(max_length = 500))]
    pub description: String,
    /// The event types it receives.
    #[oai(validator(max_items = 16))]
    pub event_types: Vec<EventType>,
    /// Whether the owners have it switched on.
    pub enabled: bool,
    /// Why the service disabled it (`null` unless it did): an endpoint that kept failing for
    /// `TASKLIGHT_WEBHOOK_DISABLE_AFTER_SECS`. `PATCH` with `enabled: true` switches it back on.
    #[oai(nullable, validator(max_length = 500))]
    pub disabled_reason: Option<String>,
    /// The circuit breaker's state.
    pub circuit: Circuit,
    /// Failed attempts in a row.
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub consecutive_failures: i32,
    /// When an open circuit lets its next probe through.
    #[oai(nullable)]
    pub circuit_retry_at: Option<DateTime<Utc>>,
    /// Since when every attempt has failed (`null` while the last one succeeded).
    #[oai(nullable)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs, after a rotation.
    #[oai(nullable)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Who created it.
    pub created_by: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its settings last changed.
    pub updated_at: DateTime<Utc>,
}

/// A subscription with its signing secret: answered once, on creation and on rotation.
#[derive(Debug, Clone, Object)]
pub struct WebhookWithSecret {
    /// The subscription.
    pub webhook: Webhook,
    /// The signing secret (`whsec_` and base64): verify each delivery's `webhook-signature`
    /// with it (Standard Webhooks). Shown only now; rotate it to get a new one.
    #[oai(validator(max_length = 64, pattern = "^whsec_[A-Za-z0-9+/=]{44}$"))]
    pub secret: String,
}

/// The event types a subscription may receive: a project's event types but `project.deleted`
/// (a project's subscriptions are deleted with it, so no webhook could receive that one; event
/// streams carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Deserialize)]
pub enum EventType {
    /// A project renamed or re-described.
    #[oai(rename = "project.updated")]
    #[serde(rename = "project.updated")]
    ProjectUpdated,
    /// A member added.
    #[oai(rename = "member.added")]
    #[serde(rename = "member.added")]
    MemberAdded,
    /// A member's role changed.
    #[oai(rename = "member.role_changed")]
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged,
    /// A member removed.
    #[oai(rename = "member.removed")]
    #[serde(rename = "member.removed")]
    MemberRemoved,
    /// A task created.
    #[oai(rename = "task.created")]
    #[serde(rename = "task.created")]
    TaskCreated,
    /// A task changed.
    #[oai(rename = "task.updated")]
    #[serde(rename = "task.updated")]
    TaskUpdated,
    /// A task deleted.
    #[oai(rename = "task.deleted")]
    #[serde(rename = "task.deleted")]
    TaskDeleted,
    /// A comment written.
    #[oai(rename = "comment.created")]
    #[serde(rename = "comment.created")]
    CommentCreated,
    /// A comment edited.
    #[oai(rename = "comment.updated")]
    #[serde(rename = "comment.updated")]
    CommentUpdated,
    /// A comment deleted.
    #[oai(rename = "comment.deleted")]
    #[serde(rename = "comment.deleted")]
    CommentDeleted,
}

impl EventType {
    /// Every type, in the order above.
    pub const ALL: [Self; 10] = [
        Self::ProjectUpdated,
        Self::MemberAdded,
        Self::MemberRoleChanged,
        Self::MemberRemoved,
        Self::TaskCreated,
        Self::TaskUpdated,
        Self::TaskDeleted,
        Self::CommentCreated,
        Self::CommentUpdated,
        Self::CommentDeleted,
    ];

    /// The event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProjectUpdated => "project.updated",
            Self::MemberAdded => "member.added",
            Self::MemberRoleChanged => "member.role_changed",
            Self::MemberRemoved => "member.removed",
            Self::TaskCreated => "task.created",
            Self::TaskUpdated => "task.updated",
            Self::TaskDeleted => "task.deleted",
            Self::CommentCreated => "comment.created",
            Self::CommentUpdated => "comment.updated",
            Self::CommentDeleted => "comment.deleted",
        }
    }

    /// From an event's `type`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: waiting for its next attempt (or for the circuit to close).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt of the retry schedule failed (dead letter); redeliver by hand.
    Dead,
}

impl DeliveryStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// From storage.
    pub fn from_stored(value: &str) -> Self {
        match value {
            "delivered" => Self::Delivered,
            "dead" => Self::Dead,
            _ => Self::Pending,
        }
    }
}

/// One event's delivery to one subscription.
#[derive(Debug, Clone, Object)]
pub struct Delivery {
    /// Delivery id.
    pub id: Uuid,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event (the `webhook-id` header of every attempt: receivers deduplicate on it).
    pub event_id: Uuid,
    /// The event's type (`webhook.ping` for a test ping).
    #[oai(validator(max_length = 64, pattern = "^[a-z_]+\\.[a-z_]+$"))]
    pub event_type: String,
    /// Its state.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries).
    #[oai(nullable)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The status code of the last attempt, if an answer came.
    #[oai(nullable, validator(minimum(value = "100"), maximum(value = "599")))]
    pub last_status: Option<i32>,
    /// Why the last attempt failed.
    #[oai(nullable, validator(max_length = 500))]
    pub last_error: Option<String>,
    /// The request that made the event.
    #[oai(validator(max_length = 128))]
    pub request_id: String,
    /// When the delivery was created.
    pub created_at: DateTime<Utc>,
    /// When it succeeded.
    #[oai(nullable)]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Object)]
pub struct Attempt {
    /// 1 for the first.
    #[oai(validator(minimum(value = "1"), maximum(value = "2147483647")))]
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// From the start to the end of the answer or the failure, in milliseconds.
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub latency_ms: i32,
    /// The answer's status code, if one came.
    #[oai(nullable, validator(minimum(value = "100"), maximum(value = "599")))]
    pub status_code: Option<i32>,
    /// Why it failed (`null` on success).
    #[oai(nullable, validator(max_length = 500))]
    pub error: Option<String>,
    /// The instance that made it.
    #[oai(validator(max_length = 64))]
    pub instance_id: String,
}

/// A delivery with its attempts and the body it sends.
#[derive(Debug, Clone, Object)]
pub struct DeliveryDetail {
    /// The delivery.
    pub delivery: Delivery,
    /// Its attempts, oldest first.
    #[oai(validator(max_items = 100))]
    pub attempts: Vec<Attempt>,
    /// The body every attempt sends (the event document).
    pub payload: serde_json::Value,
}

impl From<WebhookRecord> for Webhook {
    fn from(r: WebhookRecord) -> Self {
        let event_types = serde_json::from_str::<Vec<String>>(&r.event_types)
            .unwrap_or_default()
            .iter()
            .filter_map(|t| EventType::parse(t))
            .collect();
        Self {
            id: r.id,
            project_id: r.project_id,
            url: r.url,
            description: r.description,
            event_types,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            circuit: Circuit::from_stored(&r.circuit),
            consecutive_failures: r.consecutive_failures,
            circuit_retry_at: r.circuit_retry_at,
            failing_since: r.failing_since,
            previous_secret_expires_at: r.previous_expires_at,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<DeliveryRecord> for Delivery {
    fn from(r: DeliveryRecord) -> Self {
        let status = DeliveryStatus::from_stored(&r.status);
        Self {
            id: r.id,
            webhook_id: r.webhook_id,
            event_id: r.event_id,
            event_type: r.event_type,
            status,
            attempts: r.attempts,
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(r.next_attempt_at),
            last_status: r.last_status,
            last_error: r.last_error,
            request_id: r.request_id,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        }
    }
}

impl From<AttemptRecord> for Attempt {
    fn from(r: AttemptRecord) -> Self {
        Self {
            attempt: r.attempt,
            started_at: r.started_at,
            latency_ms: r.latency_ms,
            status_code: r.status_code,
            error: r.error,
            instance_id: r.instance_id,
        }
    }
}
