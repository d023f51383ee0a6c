//! HTTP plumbing shared by every API area: problem+json errors, request ids, JSON bodies that
//! name the bad field, bearer authentication, ETags, cursors and the middleware stack.

pub mod auth;
pub mod body;
pub mod etag;
pub mod middleware;
pub mod observe;
pub mod pagination;
pub mod problem;
pub mod request_id;
pub mod responses;
