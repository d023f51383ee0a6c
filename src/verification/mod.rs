//! Email verification: a single-use, expiring link sent to the account's address on
//! registration and on an email change (which makes the address unverified again), the
//! endpoints that take it and send it again, and `tasklight verify-email` for deployments
//! without SMTP. Invitations are shown only to verified addresses.

pub mod api;
pub mod service;
pub mod store;
