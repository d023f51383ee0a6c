//! A task's activity: what changed on it (field, old value, new value), who changed it, when,
//! and in which request. Written in the same transaction as the change; readable by every
//! member of the task's project (the project's audit log stays owner-only).

pub mod api;
pub mod model;
pub mod service;
pub mod store;
