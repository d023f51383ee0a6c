//! Users: the caller's own profile, and the admin endpoints that list users and change their
//! role or disabled status.

pub mod api;
pub mod model;
pub mod service;
pub mod store;
