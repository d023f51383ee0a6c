//! Projects and their members. Roles are `owner`, `member` and `viewer`; only owners rename or
//! delete a project and manage members, and a project always keeps at least one owner.

pub mod api;
pub mod model;
pub mod service;
pub mod store;
#[cfg(test)]
mod tests;
