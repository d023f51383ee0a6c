//! Webhooks: projects' subscriptions to their events, delivered by every instance from the
//! outbox, signed per Standard Webhooks, retried with backoff into a dead-letter state, behind a
//! circuit breaker per endpoint, and only to public addresses unless allowed.

pub mod api;
pub mod client;
pub mod delivery;
pub mod model;
pub mod service;
pub mod signing;
pub mod store;
