//! Integration tests: one binary, the real server in-process on a fresh database per test.
//! `TEST_DATABASE_URL=postgres://...` runs them on PostgreSQL; otherwise on SQLite.

mod admin;
mod audit;
mod audit_admin;
mod auth;
mod body_limits;
mod caching;
mod cluster;
mod concurrency;
mod errors;
mod etag;
mod helpers;
mod idempotency;
mod members;
mod openapi_snapshot;
mod owasp;
mod pagination;
mod platform;
mod pool;
mod projects;
mod ratelimit;
mod restart;
mod task_list_cost;
mod tasks;
mod telemetry;
mod users;
mod validation;
