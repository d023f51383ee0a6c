//! Domain events: the transactional outbox every audited change writes to (in its own
//! transaction), and what reads it: the live event streams (`GET /projects/{id}/events`) and
//! webhook delivery. An event is made by one request on one instance and may be read by any
//! instance later; its position orders it with no gap (see [`store`]).

pub mod api;
pub mod feed;
pub mod model;
pub mod service;
pub mod signal;
pub mod slots;
pub mod store;
