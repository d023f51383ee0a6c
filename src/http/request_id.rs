//! The request id: taken from a safe incoming `X-Request-Id` or generated (UUIDv7), kept in a
//! task-local for the request's lifetime, and echoed in the response.

use std::sync::Arc;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// The response and request header that carries the id.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The id of the request being served, or `"-"` outside a request.
pub fn current() -> String {
    CURRENT
        .try_with(|id| id.to_string())
        .unwrap_or_else(|_| "-".to_owned())
}

/// Accepts a client's id only if it is 1 to 128 characters from `[A-Za-z0-9._-]`.
pub fn is_safe(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Middleware: assigns the id, runs the request inside its scope, and sets the header.
pub struct RequestId;

impl<E: Endpoint> Middleware<E> for RequestId {
    type Output = RequestIdEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestIdEndpoint(ep)
    }
}

/// See [`RequestId`].
pub struct RequestIdEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestIdEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let id: Arc<str> = match req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
            Some(incoming) if is_safe(incoming) => incoming.into(),
            _ => uuid::Uuid::now_v7().to_string().into(),
        };
        let header = HeaderValue::from_str(&id).expect("request ids are header-safe");
        let result = CURRENT.scope(id, self.0.call(req)).await;
        let mut response = match result {
            Ok(output) => output.into_response(),
            Err(err) => err.into_response(),
        };
        response.headers_mut().insert(HEADER, header);
        Ok(response)
    }
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
