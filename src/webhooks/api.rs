//! `/api/v1/projects/{project_id}/webhooks` and `/api/v1/webhooks/{webhook_id}...`: a project's
//! webhook subscriptions, for its owners.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::bearer::BearerAuth;
use crate::error::FieldError;
use crate::http::body::JsonBody;
use crate::http::pagination;
use crate::http::problem::ApiError;
use crate::http::responses::{Changed, Found, NoContent, Page, ResourcePath};
use crate::http::tags::Tag;
use crate::state::AppState;
use crate::validate::{FieldChecks, Validate};
use crate::webhooks::model::{
    DESCRIPTION_MAX, Delivery, DeliveryDetail, DeliveryStatus, EventType, URL_MAX, Webhook,
    WebhookWithSecret,
};
use crate::webhooks::service::{self, NewWebhook, WebhookChanges};

crate::error_set! {
    /// Errors of creating or changing a subscription.
    WriteWebhookErrors = [400, 401, 403, 404, 413, 415];
    /// Errors of reading subscriptions and deliveries.
    ReadWebhookErrors = [400, 401, 403, 404];
    /// Errors of an action on a subscription.
    WebhookActionErrors = [400, 401, 403, 404];
}

crate::page_type!(
    /// A page of a project's webhook subscriptions.
    WebhookPage,
    Webhook
);

crate::page_type!(
    /// A page of a subscription's deliveries, newest first.
    DeliveryPage,
    Delivery
);

/// A new subscription.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where to POST deliveries: `https`, resolving only to public addresses.
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: String,
    /// What it is for (up to 500 characters).
    #[oai(validator(max_length = 500))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub description: Option<String>,
    /// The event types to send (default: all of them).
    #[oai(validator(min_items = 1, max_items = 16))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub event_types: Option<Vec<EventType>>,
    /// Switched on at once (default true).
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub enabled: Option<bool>,
}

impl Validate for CreateWebhookRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        checks.line("url", &self.url, 1, URL_MAX);
        if let Some(description) = &self.description {
            checks.text("description", description, 0, DESCRIPTION_MAX);
        }
        checks.finish()
    }
}

/// Changes to a subscription; omitted fields stay as they are.
#[derive(Object, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// New destination.
    #[oai(validator(min_length = 1, max_length = 2048))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub url: Option<String>,
    /// New description.
    #[oai(validator(max_length = 500))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub description: Option<String>,
    /// New event types.
    #[oai(validator(min_items = 1, max_items = 16))]
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub event_types: Option<Vec<EventType>>,
    /// Switch it off or on; on also clears a disabling by the service and closes the circuit.
    #[serde(default, deserialize_with = "crate::http::body::present")]
    pub enabled: Option<bool>,
}

impl Validate for UpdateWebhookRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut checks = FieldChecks::default();
        if let Some(url) = &self.url {
            checks.line("url", url, 1, URL_MAX);
        }
        if let Some(description) = &self.description {
            checks.text("description", description, 0, DESCRIPTION_MAX);
        }
        checks.finish()
    }
}

/// `201` with the new subscription and its secret.
#[derive(ApiResponse)]
pub enum WebhookCreated {
    /// Created; the secret is shown only now. `Location` is the subscription's URL.
    #[oai(status = 201)]
    Created(
        Json<WebhookWithSecret>,
        #[oai(header = "Location")] ResourcePath,
    ),
}

/// `202` with a queued delivery.
#[derive(ApiResponse)]
pub enum Queued {
    /// Queued: the delivery goes out within a second (unless the circuit is open).
    #[oai(status = 202)]
    Accepted(Json<Delivery>),
}

/// Webhook subscriptions.
pub struct WebhooksApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/api/v1", tag = "Tag::Webhooks")]
impl WebhooksApi {
    /// Subscribe to a project's events
    ///
    /// Owners only. Deliveries are POSTed as JSON (the event document: `id`, `type`,
    /// `timestamp`, `project_id`, `actor_id`, `request_id`, `data`) with the Standard Webhooks
    /// headers `webhook-id` (the event id: deduplicate on it), `webhook-timestamp` and
    /// `webhook-signature` (HMAC-SHA256 with the secret in the answer, shown only now), and
    /// `traceparent`. A 2xx answer is success; anything else is retried on the schedule of
    /// `TASKLIGHT_WEBHOOK_RETRY_SCHEDULE`. The URL must be `https` and resolve to public
    /// addresses only (400 naming `url` otherwise).
    #[oai(
        path = "/projects/:project_id/webhooks",
        method = "post",
        operation_id = "createWebhook"
    )]
    async fn create(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        body: JsonBody<CreateWebhookRequest>,
    ) -> Result<WebhookCreated, ApiError<WriteWebhookErrors>> {
        let body = body.0;
        let created = service::create(
            &self.state.domain,
            self.state.webhooks.guard(),
            &auth.0,
            project_id.0,
            NewWebhook {
                url: body.url,
                description: body.description.unwrap_or_default(),
                event_types: body.event_types,
                enabled: body.enabled.unwrap_or(true),
            },
        )
        .await?;
        let location = ResourcePath(format!("/api/v1/webhooks/{}", created.webhook.id));
        Ok(WebhookCreated::Created(Json(created), location))
    }

    /// List a project's subscriptions
    ///
    /// Owners only, oldest first, without secrets.
    #[oai(
        path = "/projects/:project_id/webhooks",
        method = "get",
        operation_id = "listWebhooks"
    )]
    async fn list(
        &self,
        auth: BearerAuth,
        /// The project.
        project_id: Path<Uuid>,
        /// Items per page (1 to 100, default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024, pattern = "^[A-Za-z0-9_-]+$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Page<WebhookPage>, ApiError<ReadWebhookErrors>> {
        let (items, next_cursor) = service::list(
            &self.state.domain,
            &auth.0,
            project_id.0,
            cursor.0.as_deref(),
            pagination::limit(limit.0),
        )
        .await?;
        Ok(Page(WebhookPage { items, next_cursor }))
    }

    /// Read a subscription
    ///
    /// Owners only: its settings, circuit breaker state and why it is disabled, if it is.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "get",
        operation_id = "getWebhook"
    )]
    async fn get(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
    ) -> Result<Found<Webhook>, ApiError<ReadWebhookErrors>> {
        Ok(Found(
            service::get(&self.state.domain, &auth.0, webhook_id.0).await?,
        ))
    }

    /// Change a subscription
    ///
    /// Owners only. `enabled: true` also switches back on a subscription the service disabled
    /// (an endpoint failing for days) and closes its circuit.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "patch",
        operation_id = "updateWebhook"
    )]
    async fn update(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
        body: JsonBody<UpdateWebhookRequest>,
    ) -> Result<Changed<Webhook>, ApiError<WriteWebhookErrors>> {
        let body = body.0;
        let webhook = service::update(
            &self.state.domain,
            self.state.webhooks.guard(),
            &auth.0,
            webhook_id.0,
            WebhookChanges {
                url: body.url,
                description: body.description,
                event_types: body.event_types,
                enabled: body.enabled,
            },
        )
        .await?;
        self.state.webhooks.wake();
        Ok(Changed(webhook))
    }

    /// Delete a subscription
    ///
    /// Owners only; its deliveries go with it.
    #[oai(
        path = "/webhooks/:webhook_id",
        method = "delete",
        operation_id = "deleteWebhook"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError<WebhookActionErrors>> {
        service::delete(&self.state.domain, &auth.0, webhook_id.0).await?;
        Ok(NoContent::NoContent)
    }

    /// Send a test ping
    ///
    /// Owners only. Queues a `webhook.ping` delivery ahead of the others, signed like every
    /// delivery.
    #[oai(
        path = "/webhooks/:webhook_id/ping",
        method = "post",
        operation_id = "pingWebhook"
    )]
    async fn ping(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
    ) -> Result<Queued, ApiError<WebhookActionErrors>> {
        let delivery = service::ping(&self.state.domain, &auth.0, webhook_id.0).await?;
        self.state.webhooks.wake();
        Ok(Queued::Accepted(Json(delivery)))
    }

    /// Rotate the signing secret
    ///
    /// Owners only. The answer carries the new secret (shown only now). The previous secret
    /// keeps signing beside it for `TASKLIGHT_WEBHOOK_SECRET_OVERLAP_SECS` (a day by default):
    /// `webhook-signature` then holds two signatures, and a receiver that knows either secret
    /// verifies.
    #[oai(
        path = "/webhooks/:webhook_id/rotate-secret",
        method = "post",
        operation_id = "rotateWebhookSecret"
    )]
    async fn rotate(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
    ) -> Result<Changed<WebhookWithSecret>, ApiError<WebhookActionErrors>> {
        let rotated = service::rotate_secret(
            &self.state.domain,
            &auth.0,
            webhook_id.0,
            self.state.config.webhooks.secret_overlap,
        )
        .await?;
        Ok(Changed(rotated))
    }

    /// List a subscription's deliveries
    ///
    /// Owners only, newest first: each event's delivery with its state, attempts so far, the
    /// next attempt's time and the last status code and error. `status=dead` lists the dead
    /// letters.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries",
        method = "get",
        operation_id = "listWebhookDeliveries"
    )]
    async fn deliveries(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
        /// Only deliveries in this state.
        status: Query<Option<DeliveryStatus>>,
        /// Items per page (1 to 100, default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        #[oai(validator(max_length = 1024, pattern = "^[A-Za-z0-9_-]+$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Page<DeliveryPage>, ApiError<ReadWebhookErrors>> {
        let (items, next_cursor) = service::deliveries(
            &self.state.domain,
            &auth.0,
            webhook_id.0,
            status.0,
            cursor.0.as_deref(),
            pagination::limit(limit.0),
        )
        .await?;
        Ok(Page(DeliveryPage { items, next_cursor }))
    }

    /// Read a delivery
    ///
    /// Owners only: the delivery, every attempt (status code, latency, error, instance) and
    /// the body it sends.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries/:delivery_id",
        method = "get",
        operation_id = "getWebhookDelivery"
    )]
    async fn delivery(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
        /// The delivery.
        delivery_id: Path<Uuid>,
    ) -> Result<Found<DeliveryDetail>, ApiError<ReadWebhookErrors>> {
        Ok(Found(
            service::delivery(&self.state.domain, &auth.0, webhook_id.0, delivery_id.0).await?,
        ))
    }

    /// Redeliver
    ///
    /// Owners only. Sends the delivery again, now, with the same event id, and from the start
    /// of the retry schedule: for a dead letter after the endpoint is fixed.
    #[oai(
        path = "/webhooks/:webhook_id/deliveries/:delivery_id/redeliver",
        method = "post",
        operation_id = "redeliverWebhookDelivery"
    )]
    async fn redeliver(
        &self,
        auth: BearerAuth,
        /// The subscription.
        webhook_id: Path<Uuid>,
        /// The delivery.
        delivery_id: Path<Uuid>,
    ) -> Result<Queued, ApiError<WebhookActionErrors>> {
        let delivery =
            service::redeliver(&self.state.domain, &auth.0, webhook_id.0, delivery_id.0).await?;
        self.state.webhooks.wake();
        Ok(Queued::Accepted(Json(delivery)))
    }
}
