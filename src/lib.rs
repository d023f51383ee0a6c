//! Tasklight: a task-manager REST backend built to run as several stateless instances.
//!
//! Domain areas (`auth`, `users`, `projects`, `tasks`, `audit`) each hold their API, rules and
//! storage; the platform modules beside them wire configuration, storage, HTTP and health.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod openapi;
pub mod projects;
pub mod ratelimit;
pub mod redis_client;
pub mod tasks;
pub mod telemetry;
pub mod users;
