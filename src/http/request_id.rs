//! The request id: a safe incoming `X-Request-Id` is kept, anything else is replaced by a
//! UUIDv7. The observing middleware (`http::observe`) assigns it and echoes it.

/// The response and request header that carries the id.
pub const HEADER: &str = "x-request-id";

/// The id of the request being served, or `"-"` outside a request.
pub fn current() -> String {
    crate::telemetry::context::request_id()
}

/// Accepts a client's id only if it is 1 to 128 characters from `[A-Za-z0-9._-]`.
pub fn is_safe(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::is_safe;

    #[test]
    fn safe_ids_are_short_tokens() {
        assert!(is_safe("abc-123_x.y"));
        assert!(is_safe(&"a".repeat(128)));
        assert!(!is_safe(&"a".repeat(129)));
        assert!(!is_safe(""));
        assert!(!is_safe("has space"));
        assert!(!is_safe("new\nline"));
        assert!(!is_safe("é"));
    }
}
