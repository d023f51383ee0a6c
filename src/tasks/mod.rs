//! Tasks inside projects: creation, filtered and sorted cursor listing, and reads and writes
//! guarded by ETags (`If-None-Match` gives 304, a stale `If-Match` gives 412).

pub mod api;
pub mod model;
pub mod requests;
pub mod service;
pub mod store;
#[cfg(test)]
mod tests;
