//! The audit log: every change to a project, member, task, or user role or status appends an
//! entry in the same transaction as the change (`crate::domain::UnitOfWork::record`). Owners
//! read their project's log; admins read all.

pub mod api;
pub mod model;
pub mod service;
pub mod store;
