//! Invitations by email: a project owner invites an address with a role; whoever holds a
//! verified account with that address sees the invitation and accepts it (becoming a member
//! with that role, in one transaction) or declines it. An invitation to an address with no
//! account waits until someone registers with it and verifies it, or until it expires.

pub mod api;
pub mod model;
pub mod service;
pub mod store;
