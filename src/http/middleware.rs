//! Small middleware of our own: the request head and body limits, the request timeout, security
//! headers, and the panic answer.

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::headers::HeaderMapExt;
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};

use crate::error::FieldError;
use crate::http::problem::Problem;

/// Refuses bodies over `max` bytes with 413: at once when `Content-Length` says so, and while
/// reading when the body is chunked.
pub struct BodyLimit {
    max: usize,
}

impl BodyLimit {
    /// A limit of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint { ep, max: self.max }
    }
}

/// See [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    ep: E,
    max: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let too_large = || {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the request body is larger than {} bytes", self.max),
            )
            .into_response()
        };
        match req
            .headers()
            .typed_get::<poem::web::headers::ContentLength>()
        {
            Some(length) if length.0 > self.max as u64 => return Ok(too_large()),
            Some(_) => {}
            None if req.headers().contains_key(header::TRANSFER_ENCODING) => {
                match req.take_body().into_bytes_limit(self.max).await {
                    Ok(bytes) => req.set_body(Body::from_bytes(bytes)),
                    Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
                    Err(err) => return Err(err.into()),
                }
            }
            None => {}
        }
        self.ep.call(req).await.map(IntoResponse::into_response)
    }
}

/// Refuses a request whose target is longer than `max_uri` bytes (414) or whose header section
/// is larger than `max_headers` bytes (431), before authentication, rate limiting or a handler
/// reads it. A header line counts as its name, its value and 4 bytes (`: ` and CRLF), as on the
/// wire. The 431 names the largest header, never a value (it may be a credential). The health
/// routes are exempt: probes come from the platform, and hyper's own limit (about 400 KB) still
/// applies to them.
pub struct HeadLimit {
    max_uri: usize,
    max_headers: usize,
}

impl HeadLimit {
    /// Limits of `max_uri` bytes for the request target and `max_headers` for the headers.
    pub fn new(max_uri: usize, max_headers: usize) -> Self {
        Self {
            max_uri,
            max_headers,
        }
    }
}

impl<E: Endpoint> Middleware<E> for HeadLimit {
    type Output = HeadLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HeadLimitEndpoint {
            ep,
            max_uri: self.max_uri,
            max_headers: self.max_headers,
        }
    }
}

/// See [`HeadLimit`].
pub struct HeadLimitEndpoint<E> {
    ep: E,
    max_uri: usize,
    max_headers: usize,
}

/// Why a request head was refused; `None` when it is within both limits.
fn head_problem(req: &Request, max_uri: usize, max_headers: usize) -> Option<Problem> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > max_uri {
        return Some(
            Problem::new(
                StatusCode::URI_TOO_LONG,
                "uri-too-long",
                format!("the request target is {target} bytes, over the limit of {max_uri}"),
            )
            .with_fields(vec![FieldError::new(
                "uri",
                format!("{target} bytes; shorten the query (at most {max_uri} bytes)"),
            )]),
        );
    }
    let mut total = 0;
    let mut largest: Option<(&str, usize)> = None;
    for (name, value) in req.headers() {
        let line = name.as_str().len() + value.len() + 4;
        total += line;
        if largest.is_none_or(|(_, size)| line > size) {
            largest = Some((name.as_str(), line));
        }
    }
    if total <= max_headers {
        return None;
    }
    let (name, size) = largest.unwrap_or_default();
    Some(
        Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!(
                "the request headers are {total} bytes, over the limit of {max_headers}; \
                 the largest is `{name}`"
            ),
        )
        .with_fields(vec![FieldError::new(
            name,
            format!("{size} of the {total} header bytes (limit {max_headers})"),
        )]),
    )
}

impl<E: Endpoint> Endpoint for HeadLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !req.uri().path().starts_with("/health/")
            && let Some(problem) = head_problem(&req, self.max_uri, self.max_headers)
        {
            return Ok(problem.into_response());
        }
        self.ep.call(req).await.map(IntoResponse::into_response)
    }
}

/// Adds `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`, a restrictive
/// `Content-Security-Policy` (relaxed for Swagger UI), and `Strict-Transport-Security` when
/// configured (the service is reached over HTTPS), to every response.
pub struct SecurityHeaders {
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// With HSTS for `hsts_max_age` seconds, or without when it is zero.
    pub fn new(hsts_max_age: u64) -> Self {
        Self {
            hsts: (hsts_max_age > 0)
                .then(|| {
                    HeaderValue::from_str(&format!("max-age={hsts_max_age}; includeSubDomains"))
                })
                .and_then(Result::ok),
        }
    }
}

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        SecurityHeadersEndpoint(ep, self.hsts.clone())
    }
}

/// See [`SecurityHeaders`].
pub struct SecurityHeadersEndpoint<E>(E, Option<HeaderValue>);

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let is_docs = req.uri().path().starts_with("/docs");
        let mut response = self.0.call(req).await?.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if let Some(hsts) = &self.1 {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        if !is_docs {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            );
        }
        Ok(response)
    }
}

/// The answer to a panic in a handler: a generic 500 problem; the server keeps serving.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    let mut response = Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "an unexpected error occurred; it has been logged with this request id",
    )
    .into_response();
    response.set_data(crate::http::observe::Panicked);
    response
}

/// Answers 503 (problem `timeout`, with `Retry-After`) when the request is not done within the
/// limit; the work in progress is dropped (a transaction in it rolls back).
pub struct Timeout {
    limit: std::time::Duration,
}

impl Timeout {
    /// A limit of `limit` per request.
    pub fn new(limit: std::time::Duration) -> Self {
        Self { limit }
    }
}

impl<E: Endpoint> Middleware<E> for Timeout {
    type Output = TimeoutEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        TimeoutEndpoint {
            ep,
            limit: self.limit,
        }
    }
}

/// See [`Timeout`].
pub struct TimeoutEndpoint<E> {
    ep: E,
    limit: std::time::Duration,
}

impl<E: Endpoint> Endpoint for TimeoutEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match tokio::time::timeout(self.limit, self.ep.call(req)).await {
            Ok(result) => result.map(IntoResponse::into_response),
            Err(_) => {
                tracing::warn!(
                    limit_ms = self.limit.as_millis() as u64,
                    "request timed out"
                );
                Ok(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    format!(
                        "the request took longer than {} ms and was abandoned; retry",
                        self.limit.as_millis()
                    ),
                )
                .into_response())
            }
        }
    }
}
