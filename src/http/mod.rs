//! HTTP plumbing shared by every API area: problem+json errors, request ids, client addresses,
//! JSON bodies that name the bad field, page parameters, OpenAPI tags and the middleware stack.
//! It imports no domain area.

pub mod body;
pub mod caching;
pub mod client_ip;
pub mod compression;
pub mod drain;
pub mod middleware;
pub mod observe;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod request_id;
pub mod responses;
pub mod tags;
