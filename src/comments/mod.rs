//! Comments on tasks: Markdown text stored as sent, listed oldest first with cursor pagination;
//! authors edit and delete their own, project owners may delete any, viewers only read. Adding
//! or deleting a comment changes the task's `comment_count` and version.

pub mod api;
pub mod model;
pub mod service;
pub mod store;
#[cfg(test)]
mod tests;
