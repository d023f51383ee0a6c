//! The route tree: every API area combined into one OpenAPI service, the documents and Swagger
//! UI, the middleware in its order, and the admin routes. The only module that imports the
//! `*/api.rs` modules; a new API area is added to [`Apis`] and [`api_service`] here.

use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::activity::api::ActivityApi;
use crate::audit::api::AuditApi;
use crate::auth::api::AuthApi;
use crate::comments::api::CommentsApi;
use crate::events::api::EventsApi;
use crate::health::HealthApi;
use crate::http::caching::CacheHeaders;
use crate::http::compression::CompressUnlessStream;
use crate::http::middleware::{BodyLimit, HeadLimit, SecurityHeaders, Timeout, panic_response};
use crate::http::observe::Observe;
use crate::http::problem::render_poem_error;
use crate::invitations::api::InvitationsApi;
use crate::projects::api::ProjectsApi;
use crate::ratelimit::middleware::RateLimit;
use crate::state::AppState;
use crate::tasks::api::TasksApi;
use crate::telemetry::routes::RouteTable;
use crate::users::api::UsersApi;
use crate::verification::api::VerificationApi;
use crate::webhooks::api::WebhooksApi;

/// The API areas, as one type.
pub type Apis = (
    HealthApi,
    AuthApi,
    UsersApi,
    ProjectsApi,
    TasksApi,
    CommentsApi,
    ActivityApi,
    AuditApi,
    InvitationsApi,
    VerificationApi,
    EventsApi,
    WebhooksApi,
);

/// Builds the OpenAPI service (routes plus document).
pub fn api_service(state: AppState) -> OpenApiService<Apis, ()> {
    let apis = (
        HealthApi {
            state: state.clone(),
        },
        AuthApi {
            state: state.clone(),
        },
        UsersApi {
            state: state.clone(),
        },
        ProjectsApi {
            state: state.clone(),
        },
        TasksApi {
            state: state.clone(),
            rendered: Default::default(),
        },
        CommentsApi {
            state: state.clone(),
        },
        ActivityApi {
            state: state.clone(),
        },
        AuditApi {
            state: state.clone(),
        },
        InvitationsApi {
            state: state.clone(),
        },
        VerificationApi {
            state: state.clone(),
        },
        EventsApi {
            state: state.clone(),
        },
        WebhooksApi { state },
    );
    OpenApiService::new(apis, "Tasklight API", env!("CARGO_PKG_VERSION"))
        .description(
            "Task-manager REST API. Errors are `application/problem+json` with `type`, `title`, \
             `status`, `detail`, `request_id` and, for invalid input, `errors` naming each field. \
             Lists return `{ items, next_cursor }`; pass `next_cursor` back as `cursor`.",
        )
        .license(poem_openapi::LicenseObject::new("MIT").url("https://opensource.org/license/mit"))
        .server("/")
}

/// The public route tree: API, OpenAPI documents, Swagger UI and health, behind the middleware
/// stack.
pub fn routes(state: AppState) -> impl Endpoint {
    let api = api_service(state.clone());
    let spec = api.spec();
    let route_table = RouteTable::from_spec(&spec);
    let document = crate::http::openapi::Document::finish(&spec, api.swagger_ui_html());
    let tree = Route::new()
        .nest("/", api)
        .at("/api/v1/openapi.json", document.json_endpoint())
        .at("/api/v1/openapi.yaml", document.yaml_endpoint())
        .at("/docs", document.swagger_ui_endpoint());
    with_middleware(state, route_table, tree)
}

/// Wraps an endpoint in the middleware stack, outermost first: compression (except of event
/// streams, which must reach the client frame by frame), observation
/// (request id, client address, trace, metrics, access log, Sentry), state, caching headers
/// (outside CORS, so its `Vary: Origin` is kept), security headers,
/// the request-head limits, rate limits, the timeout, problem rendering of every error, panic
/// recovery, and the body limit.
pub fn with_middleware(
    state: AppState,
    route_table: RouteTable,
    endpoint: impl Endpoint + 'static,
) -> impl Endpoint {
    let max_body = state.config.max_body_bytes;
    let cors = &state.config.cors_allowed_origins;
    let cors_enabled = !cors.is_empty();
    let cors = poem::middleware::Cors::new()
        .allow_origins(cors.iter().map(String::as_str))
        .allow_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allow_headers([
            "authorization",
            "content-type",
            "if-match",
            "if-none-match",
            "idempotency-key",
            "x-request-id",
            "traceparent",
            "tracestate",
        ])
        .expose_headers([
            "etag",
            "location",
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "x-request-id",
            "traceparent",
        ])
        .max_age(600);
    // Each layer's future holds the one inside it, so without a break the outer layers' futures
    // grow to many KiB and every layer copies the whole nest as it starts (profiled: about 30 KB
    // of `memcpy` per request). `.boxed()` every few layers puts the inner futures on the heap:
    // one small allocation each instead of the copies.
    endpoint
        .with(BodyLimit::new(max_body))
        .with(CatchPanic::new().with_handler(panic_response))
        .catch_all_error(|err| async move { render_poem_error(err) })
        .boxed()
        .with(Timeout::new(state.config.request_timeout))
        .with(RateLimit::new(
            state.rate_limiter.clone(),
            state.auth.tokens.clone(),
        ))
        .with(HeadLimit::new(
            state.config.max_uri_bytes,
            state.config.max_header_bytes,
        ))
        .boxed()
        .with(SecurityHeaders::new(state.config.hsts_max_age))
        // Without a configured origin no CORS header is sent: browsers keep other sites out.
        .with_if(cors_enabled, cors)
        .with(CacheHeaders::new(cors_enabled))
        .data(state.clone())
        .boxed()
        .with(Observe::new(
            state.domain.metrics.clone(),
            state.drain.clone(),
            state.domain.instance_id.clone(),
            state.config.trusted_proxies.clone(),
            route_table,
        ))
        .with(CompressUnlessStream::new())
}

/// The admin route tree: `/metrics` (Prometheus text) and the health checks.
pub fn admin_routes(state: AppState) -> impl Endpoint {
    Route::new()
        .at(
            "/metrics",
            poem::endpoint::make_sync({
                let state = state.clone();
                move |_| {
                    let domain = &state.domain;
                    let body = domain
                        .metrics
                        .render(domain.db.pool_stats(), domain.cache.l1_entries());
                    poem::Response::builder()
                        .content_type("text/plain; version=0.0.4; charset=utf-8")
                        .body(body)
                }
            }),
        )
        .at(
            "/health/live",
            poem::endpoint::make_sync(|_| crate::health::live_response()),
        )
        .at(
            "/health/ready",
            poem::endpoint::make({
                let state = state.clone();
                move |_| {
                    let state = state.clone();
                    async move { crate::health::ready_response(&state).await }
                }
            }),
        )
}
