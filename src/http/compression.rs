//! Response compression, except for event streams: a compressor holds bytes back until it has
//! enough to encode, and an event must reach the client when it happens.

use poem::middleware::Compression;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// poem's compression for every answer but `GET .../events` (`text/event-stream`).
pub struct CompressUnlessStream;

impl CompressUnlessStream {
    /// The middleware.
    pub fn new() -> Self {
        Self
    }
}

impl Default for CompressUnlessStream {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Endpoint> Middleware<E> for CompressUnlessStream {
    type Output = CompressUnlessStreamEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CompressUnlessStreamEndpoint {
            compressed: Compression::new().transform(ep),
        }
    }
}

/// The endpoint [`CompressUnlessStream`] makes.
pub struct CompressUnlessStreamEndpoint<E: Endpoint> {
    compressed: poem::middleware::CompressionEndpoint<E>,
}

impl<E: Endpoint> Endpoint for CompressUnlessStreamEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Response> {
        if is_stream(&req) {
            // Without Accept-Encoding the compressor passes the answer through as it is.
            req.headers_mut()
                .remove(poem::http::header::ACCEPT_ENCODING);
        }
        self.compressed
            .call(req)
            .await
            .map(IntoResponse::into_response)
    }
}

/// `GET /api/v1/projects/{project_id}/events`.
fn is_stream(req: &Request) -> bool {
    req.method() == poem::http::Method::GET && req.uri().path().ends_with("/events")
}
