//! Integration tests: one binary, the real server in-process on a fresh database per test.
//! `TEST_DATABASE_URL=postgres://...` runs them on PostgreSQL; otherwise on SQLite.

mod activity;
mod admin;
mod audit;
mod audit_admin;
mod auth;
mod body_limits;
mod caching;
mod cluster;
mod cluster_events;
mod comments;
mod concurrency;
mod email_verification;
mod errors;
mod etag;
mod events;
mod helpers;
mod idempotency;
mod invitations;
mod members;
mod my_tasks;
mod openapi_snapshot;
mod owasp;
mod pagination;
mod platform;
mod pool;
mod projects;
mod ratelimit;
mod restart;
mod search;
mod task_list_cost;
mod tasks;
mod telemetry;
mod users;
mod validation;
mod webhooks;
