//! Tasklight: a task-manager REST backend built to run as several stateless instances.
//!
//! Domain areas (`auth`, `users`, `projects`, `tasks`, `comments`, `audit`) each hold their API,
//! rules, model and storage; the platform modules below them hold configuration, telemetry, the
//! database, the cache and the HTTP plumbing. README.md's "Code map" says which module may
//! import which.

pub mod activity;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod comments;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod etag;
pub mod events;
pub mod health;
pub mod housekeeping;
pub mod http;
pub mod idempotency;
pub mod invitations;
pub mod mail;
pub mod paging;
pub mod projects;
pub mod ratelimit;
pub mod redis_client;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod users;
pub mod validate;
pub mod verification;
pub mod webhooks;
