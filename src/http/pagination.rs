//! The page parameters every list operation shares: the `limit` default and bounds, and the
//! page type `{ "items": [...], "next_cursor": "..." | null }`. Cursors themselves are
//! `crate::paging`.

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest accepted `limit`.
pub const MAX_LIMIT: u32 = 100;

/// The `limit` default, for `#[oai(default = "crate::http::pagination::default_limit")]`, so
/// the document states it.
pub fn default_limit() -> u32 {
    DEFAULT_LIMIT
}

/// The page size to use for an optional `limit` (already range-checked by the parameter).
pub fn limit(requested: Option<u32>) -> u32 {
    requested.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// Declares a page type: `{ "items": [...], "next_cursor": "..." | null }`.
#[macro_export]
macro_rules! page_type {
    ($(#[$meta:meta])* $name:ident, $item:ty) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::Object)]
        pub struct $name {
            /// The items of this page (at most `limit`, which is at most 100).
            #[oai(validator(max_items = 100))]
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; `null` on the last page.
            #[oai(nullable, validator(max_length = 1024, pattern = "^[A-Za-z0-9_-]+$"))]
            pub next_cursor: Option<String>,
        }
    };
}
