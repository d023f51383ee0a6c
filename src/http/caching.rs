//! HTTP caching headers, decided in one place for every response of the public listener:
//! `Cache-Control` by route template, method and status, and `Vary` for the request headers a
//! body depends on. The policy (also in the README, "HTTP caching"):
//!
//! | answer | `Cache-Control` |
//! |---|---|
//! | anything under `/api/v1/auth/` (tokens), any error (4xx, 5xx), any write (not GET/HEAD), health | `no-store` |
//! | the OpenAPI documents and Swagger UI (the same for everyone, change only with a release) | `public, max-age=300` |
//! | every other API read, 2xx or 304 (per caller; revalidate with the `ETag` where there is one) | `private, no-cache` |
//!
//! `Vary` is `Accept-Encoding` on every answer (any body may be compressed), plus
//! `Authorization` on the API's (the body depends on the caller), plus `Origin` first when CORS
//! is configured (`Access-Control-Allow-Origin` echoes the request's origin; poem's CORS layer
//! adds `Vary: Origin` only for wildcard origins). A `Cache-Control` an operation set itself is
//! kept. Every value is a static `HeaderValue`: nothing is allocated per request unless an
//! inner layer set a `Vary` of its own.

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::telemetry::context;
use crate::telemetry::routes::{DOCS, UNMATCHED};

// Statics: cloning a static `HeaderValue` copies a pointer and a length, nothing is counted.
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
static PRIVATE_NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");
static PUBLIC_FIVE_MINUTES: HeaderValue = HeaderValue::from_static("public, max-age=300");
static VARY_ENCODING: HeaderValue = HeaderValue::from_static("Accept-Encoding");
static VARY_CALLER: HeaderValue = HeaderValue::from_static("Authorization, Accept-Encoding");
static VARY_ORIGIN_ENCODING: HeaderValue = HeaderValue::from_static("Origin, Accept-Encoding");
static VARY_ORIGIN_CALLER: HeaderValue =
    HeaderValue::from_static("Origin, Authorization, Accept-Encoding");

/// What a route serves, as far as caching goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteKind {
    /// Registration, login, refresh, logout: answers carry tokens or end them.
    Credentials,
    /// The OpenAPI documents and Swagger UI.
    Document,
    /// Liveness and readiness.
    Health,
    /// Every other API route, and paths no route matches.
    Api,
}

fn route_kind(route: &str) -> RouteKind {
    if route.starts_with("/api/v1/auth/") {
        RouteKind::Credentials
    } else if route == DOCS || route.starts_with("/api/v1/openapi.") {
        RouteKind::Document
    } else if route.starts_with("/health/") {
        RouteKind::Health
    } else {
        debug_assert!(route == UNMATCHED || route.starts_with('/'));
        RouteKind::Api
    }
}

/// The `Cache-Control` of an answer with `status` to `method` on a route of `kind`.
fn cache_control(kind: RouteKind, method: &Method, status: StatusCode) -> &'static HeaderValue {
    let read = method == Method::GET || method == Method::HEAD;
    if kind == RouteKind::Credentials || kind == RouteKind::Health || !read {
        return &NO_STORE;
    }
    if status.is_client_error() || status.is_server_error() {
        return &NO_STORE;
    }
    match kind {
        RouteKind::Document => &PUBLIC_FIVE_MINUTES,
        _ => &PRIVATE_NO_CACHE,
    }
}

/// The `Vary` this layer adds for a route of `kind`, with `Origin` when CORS is on.
fn vary(kind: RouteKind, cors: bool) -> &'static HeaderValue {
    match (kind, cors) {
        (RouteKind::Document | RouteKind::Health, false) => &VARY_ENCODING,
        (RouteKind::Credentials | RouteKind::Api, false) => &VARY_CALLER,
        (RouteKind::Document | RouteKind::Health, true) => &VARY_ORIGIN_ENCODING,
        (RouteKind::Credentials | RouteKind::Api, true) => &VARY_ORIGIN_CALLER,
    }
}

/// See the module documentation.
pub struct CacheHeaders {
    cors: bool,
}

impl CacheHeaders {
    /// The layer for an app with CORS on (`cors`: some origin is allowed) or off.
    pub fn new(cors: bool) -> Self {
        Self { cors }
    }
}

impl<E: Endpoint> Middleware<E> for CacheHeaders {
    type Output = CacheHeadersEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CacheHeadersEndpoint {
            ep,
            cors: self.cors,
        }
    }
}

/// See [`CacheHeaders`].
pub struct CacheHeadersEndpoint<E> {
    ep: E,
    cors: bool,
}

impl<E: Endpoint> Endpoint for CacheHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let method = req.method().clone();
        let mut response = match self.ep.call(req).await {
            Ok(output) => output.into_response(),
            Err(err) => err.into_response(),
        };
        let kind = route_kind(context::with(|c| c.route).unwrap_or(UNMATCHED));
        let status = response.status();
        let headers = response.headers_mut();
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert_with(|| cache_control(kind, &method, status).clone());
        let ours = vary(kind, self.cors);
        match headers.get(header::VARY) {
            // CORS's own `Vary: Origin` is already in ours.
            None => {
                headers.insert(header::VARY, ours.clone());
            }
            Some(theirs) if self.cors && theirs == "Origin" => {
                headers.insert(header::VARY, ours.clone());
            }
            Some(theirs) => {
                let mut joined = theirs.as_bytes().to_vec();
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(ours.as_bytes());
                if let Ok(joined) = HeaderValue::from_bytes(&joined) {
                    headers.insert(header::VARY, joined);
                }
            }
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(route: &str, method: Method, status: u16) -> &'static HeaderValue {
        cache_control(
            route_kind(route),
            &method,
            StatusCode::from_u16(status).unwrap(),
        )
    }

    #[test]
    fn reads_are_private_and_revalidated_and_their_304_says_the_same() {
        for status in [200, 304] {
            assert_eq!(
                policy("/api/v1/tasks/{task_id}", Method::GET, status),
                "private, no-cache"
            );
        }
        assert_eq!(
            policy("/api/v1/projects", Method::GET, 200),
            "private, no-cache"
        );
        assert_eq!(
            policy("/api/v1/users/me", Method::HEAD, 200),
            "private, no-cache"
        );
    }

    #[test]
    fn tokens_errors_writes_and_health_are_never_stored() {
        for (route, method, status) in [
            ("/api/v1/auth/login", Method::POST, 200),
            ("/api/v1/auth/refresh", Method::POST, 200),
            ("/api/v1/auth/logout", Method::POST, 204),
            ("/api/v1/tasks/{task_id}", Method::GET, 404),
            ("/api/v1/tasks/{task_id}", Method::GET, 429),
            ("/api/v1/tasks/{task_id}", Method::PATCH, 200),
            ("/api/v1/projects", Method::POST, 201),
            ("/api/v1/openapi.json", Method::GET, 503),
            ("/health/ready", Method::GET, 200),
            (UNMATCHED, Method::GET, 404),
        ] {
            assert_eq!(
                policy(route, method.clone(), status),
                "no-store",
                "{method} {route} {status}"
            );
        }
    }

    #[test]
    fn documents_are_public_for_five_minutes() {
        for route in ["/api/v1/openapi.json", "/api/v1/openapi.yaml", DOCS] {
            assert_eq!(policy(route, Method::GET, 200), "public, max-age=300");
            assert_eq!(vary(route_kind(route), false), "Accept-Encoding");
            assert_eq!(vary(route_kind(route), true), "Origin, Accept-Encoding");
        }
        assert_eq!(
            vary(route_kind("/api/v1/tasks/{task_id}"), false),
            "Authorization, Accept-Encoding"
        );
        assert_eq!(
            vary(route_kind("/api/v1/tasks/{task_id}"), true),
            "Origin, Authorization, Accept-Encoding"
        );
    }
}
