//! The rules of webhook subscriptions: owners of a project create, list, change, delete,
//! ping and rotate its subscriptions, and list and redeliver their deliveries. To everyone else
//! a subscription does not exist (404). Changes are audited (without the secret).

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::client::AddressGuard;
use super::model::{
    Circuit, Delivery, DeliveryDetail, DeliveryStatus, EventType, URL_MAX, Webhook,
    WebhookWithSecret,
};
use super::signing::new_secret;
use super::store::{DeliveryRecord, WebhookRecord};
use crate::audit::model::{Change, resource};
use crate::auth::Principal;
use crate::domain::{DomainContext, UnitOfWork};
use crate::error::{AppError, AppResult};
use crate::paging::Paging;
use crate::projects::service::{current_role, require_owner};
use crate::store::Store;
use crate::validate::FieldChecks;

/// What a subscription is made with.
pub struct NewWebhook {
    /// Destination.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The types to send; `None`: every type.
    pub event_types: Option<Vec<EventType>>,
    /// Switched on at once (default true).
    pub enabled: bool,
}

/// A change to a subscription's settings.
#[derive(Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub enabled: Option<bool>,
}

/// Checks a destination: a well-formed URL, then the address guard (scheme, credentials and
/// every address it resolves to). The error names the `url` field.
async fn check_url(guard: &AddressGuard, url: &str) -> AppResult<String> {
    let url = url.trim();
    if url.is_empty() || url.len() > URL_MAX {
        return Err(AppError::field(
            "url",
            format!("must be 1 to {URL_MAX} characters"),
        ));
    }
    let parsed = url::Url::parse(url)
        .map_err(|err| AppError::field("url", format!("is not a URL: {err}")))?;
    guard
        .check(&parsed)
        .await
        .map_err(|why| AppError::field("url", why))?;
    Ok(parsed.to_string())
}

fn check_types(types: Option<Vec<EventType>>) -> AppResult<String> {
    let mut types = types.unwrap_or_else(|| EventType::ALL.to_vec());
    if types.is_empty() {
        return Err(AppError::field(
            "event_types",
            "must name at least one event type",
        ));
    }
    types.sort_by_key(|t| EventType::ALL.iter().position(|a| a == t));
    types.dedup();
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    Ok(serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()))
}

fn check_description(description: &str) -> AppResult<()> {
    let mut checks = FieldChecks::default();
    checks.text("description", description, 0, super::model::DESCRIPTION_MAX);
    let errors = checks.finish();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Creates a subscription (owners); the answer carries the secret, shown only now.
pub async fn create(
    ctx: &DomainContext,
    guard: &AddressGuard,
    principal: &Principal,
    project_id: Uuid,
    new: NewWebhook,
) -> AppResult<WebhookWithSecret> {
    check_description(&new.description)?;
    let event_types = check_types(new.event_types)?;
    let url = check_url(guard, &new.url).await?;
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    work.lock_project(project_id).await?;
    require_owner(current_role(&mut *work, project_id, principal.user_id).await?)?;
    let now = crate::db::now();
    let record = WebhookRecord {
        id: Uuid::now_v7(),
        project_id,
        url,
        description: new.description,
        event_types,
        secret: new_secret(),
        previous_secret: None,
        previous_expires_at: None,
        enabled: new.enabled,
        disabled_reason: None,
        circuit: Circuit::Closed.as_str().to_owned(),
        consecutive_failures: 0,
        circuit_retry_at: None,
        failing_since: None,
        lease_owner: None,
        lease_until: None,
        created_by: principal.user_id,
        created_at: now,
        updated_at: now,
    };
    work.insert_webhook(&record).await?;
    let secret = record.secret.clone();
    let webhook = Webhook::from(record);
    record_change(&mut work, "webhook.created", &webhook).await?;
    work.commit().await?;
    Ok(WebhookWithSecret { webhook, secret })
}

async fn record_change(
    work: &mut UnitOfWork<'_>,
    action: &'static str,
    webhook: &Webhook,
) -> AppResult<()> {
    work.record(Change {
        action,
        entity_type: "webhook",
        entity_id: webhook.id,
        project_id: Some(webhook.project_id),
        summary: json!({
            "url": webhook.url,
            "event_types": webhook.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "enabled": webhook.enabled,
        }),
        resource: resource(webhook),
    })
    .await?;
    Ok(())
}

/// The subscription `id` as `store` holds it, if the caller owns its project (404 otherwise,
/// 403 for its other members).
async fn owned(store: &mut dyn Store, principal: &Principal, id: Uuid) -> AppResult<WebhookRecord> {
    let webhook = store
        .webhook(id)
        .await?
        .ok_or(AppError::NotFound("webhook"))?;
    let role = current_role(store, webhook.project_id, principal.user_id)
        .await
        .map_err(|_| AppError::NotFound("webhook"))?;
    require_owner(role)?;
    Ok(webhook)
}

/// A project's subscriptions (owners), by id.
pub async fn list(
    ctx: &DomainContext,
    principal: &Principal,
    project_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Webhook>, Option<String>)> {
    let mut store = ctx.read().await?;
    require_owner(current_role(&mut *store, project_id, principal.user_id).await?)?;
    let paging = Paging::<Uuid>::new(&["webhooks", &project_id.to_string()], cursor, limit)?;
    let rows = store
        .webhooks_of(project_id, paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |w| w.id))
}

/// One subscription (owners).
pub async fn get(ctx: &DomainContext, principal: &Principal, id: Uuid) -> AppResult<Webhook> {
    Ok(owned(&mut *ctx.read().await?, principal, id).await?.into())
}

/// Changes a subscription's settings (owners). Switching it on clears a disabling by the
/// service and closes its circuit.
pub async fn update(
    ctx: &DomainContext,
    guard: &AddressGuard,
    principal: &Principal,
    id: Uuid,
    changes: WebhookChanges,
) -> AppResult<Webhook> {
    if let Some(description) = &changes.description {
        check_description(description)?;
    }
    let url = match &changes.url {
        Some(url) => Some(check_url(guard, url).await?),
        None => None,
    };
    let event_types = match changes.event_types {
        Some(types) => Some(check_types(Some(types))?),
        None => None,
    };
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let mut webhook = owned(&mut *work, principal, id).await?;
    if let Some(url) = url {
        webhook.url = url;
    }
    if let Some(description) = changes.description {
        webhook.description = description;
    }
    if let Some(types) = event_types {
        webhook.event_types = types;
    }
    if let Some(enabled) = changes.enabled {
        if enabled && (!webhook.enabled || webhook.disabled_reason.is_some()) {
            webhook.disabled_reason = None;
            webhook.circuit = Circuit::Closed.as_str().to_owned();
            webhook.consecutive_failures = 0;
            webhook.circuit_retry_at = None;
            webhook.failing_since = None;
        }
        webhook.enabled = enabled;
    }
    webhook.updated_at = crate::db::now();
    work.update_webhook(&webhook).await?;
    let answer = Webhook::from(webhook);
    record_change(&mut work, "webhook.updated", &answer).await?;
    work.commit().await?;
    Ok(answer)
}

/// Deletes a subscription and its deliveries (owners).
pub async fn delete(ctx: &DomainContext, principal: &Principal, id: Uuid) -> AppResult<()> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let webhook = owned(&mut *work, principal, id).await?;
    work.delete_webhook(id).await?;
    let answer = Webhook::from(webhook);
    record_change(&mut work, "webhook.deleted", &answer).await?;
    work.commit().await
}

/// Replaces the signing secret (owners); the previous one keeps signing beside it for
/// `overlap`, so receivers can switch without losing a delivery.
pub async fn rotate_secret(
    ctx: &DomainContext,
    principal: &Principal,
    id: Uuid,
    overlap: Duration,
) -> AppResult<WebhookWithSecret> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let mut webhook = owned(&mut *work, principal, id).await?;
    let now = crate::db::now();
    let secret = new_secret();
    webhook.previous_secret = Some(std::mem::replace(&mut webhook.secret, secret.clone()));
    webhook.previous_expires_at =
        Some(now + chrono::Duration::from_std(overlap).unwrap_or_default());
    webhook.updated_at = now;
    work.update_webhook(&webhook).await?;
    let answer = Webhook::from(webhook);
    record_change(&mut work, "webhook.secret_rotated", &answer).await?;
    work.commit().await?;
    Ok(WebhookWithSecret {
        webhook: answer,
        secret,
    })
}

/// Queues a `webhook.ping` delivery, ahead of the subscription's other pending deliveries
/// (owners).
pub async fn ping(ctx: &DomainContext, principal: &Principal, id: Uuid) -> AppResult<Delivery> {
    let webhook = owned(&mut *ctx.read().await?, principal, id).await?;
    let now = crate::db::now();
    let event_id = Uuid::now_v7();
    let request_id = crate::telemetry::context::request_id();
    let payload = json!({
        "id": event_id,
        "type": "webhook.ping",
        "timestamp": now,
        "project_id": webhook.project_id,
        "actor_id": principal.user_id,
        "request_id": request_id,
        "data": { "webhook_id": webhook.id },
    });
    let delivery = DeliveryRecord {
        id: Uuid::now_v7(),
        webhook_id: webhook.id,
        event_id,
        event_type: "webhook.ping".to_owned(),
        tx_id: 0,
        seq: 0,
        payload: payload.to_string(),
        traceparent: crate::telemetry::context::trace_context().map(|(parent, _)| parent),
        request_id,
        status: DeliveryStatus::Pending.as_str().to_owned(),
        attempts: 0,
        cycle_start: 0,
        next_attempt_at: now,
        last_status: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
    };
    ctx.read().await?.insert_delivery(&delivery).await?;
    Ok(delivery.into())
}

/// A subscription's deliveries, newest first (owners); only those in `status` when given.
pub async fn deliveries(
    ctx: &DomainContext,
    principal: &Principal,
    id: Uuid,
    status: Option<DeliveryStatus>,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<Delivery>, Option<String>)> {
    let mut store = ctx.read().await?;
    owned(&mut *store, principal, id).await?;
    let status = status.map(DeliveryStatus::as_str);
    let paging = Paging::<Uuid>::new(
        &["deliveries", &id.to_string(), status.unwrap_or("")],
        cursor,
        limit,
    )?;
    let rows = store
        .deliveries_of(id, status, paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |d| d.id))
}

/// A delivery with its attempts (owners).
pub async fn delivery(
    ctx: &DomainContext,
    principal: &Principal,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> AppResult<DeliveryDetail> {
    let mut store = ctx.read().await?;
    owned(&mut *store, principal, webhook_id).await?;
    let delivery = store
        .delivery(delivery_id)
        .await?
        .filter(|d| d.webhook_id == webhook_id)
        .ok_or(AppError::NotFound("delivery"))?;
    let attempts = store.attempts_of(delivery_id).await?;
    Ok(DeliveryDetail {
        payload: serde_json::from_str(&delivery.payload).unwrap_or_default(),
        delivery: delivery.into(),
        attempts: attempts.into_iter().map(Into::into).collect(),
    })
}

/// Sends a delivery again from the start of the retry schedule (owners): a dead letter, or
/// one still pending (at once). A delivered one is sent again too, with the same event id.
pub async fn redeliver(
    ctx: &DomainContext,
    principal: &Principal,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> AppResult<Delivery> {
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    owned(&mut *work, principal, webhook_id).await?;
    let mut delivery = work
        .delivery(delivery_id)
        .await?
        .filter(|d| d.webhook_id == webhook_id)
        .ok_or(AppError::NotFound("delivery"))?;
    delivery.status = DeliveryStatus::Pending.as_str().to_owned();
    delivery.cycle_start = delivery.attempts;
    delivery.next_attempt_at = crate::db::now();
    delivery.delivered_at = None;
    work.update_delivery(&delivery).await?;
    work.commit().await?;
    Ok(delivery.into())
}
