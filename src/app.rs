//! Wiring: shared state, the route tree with its middleware, start-up and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::{CatchPanic, Compression};
use poem::{Endpoint, EndpointExt, Route, Server};
use tokio::sync::oneshot;

use crate::auth::tokens::TokenKeys;
use crate::config::{Config, JwtSecret};
use crate::db::Db;
use crate::http::middleware::{BodyLimit, HeadLimit, SecurityHeaders, Timeout, panic_response};
use crate::http::observe::Observe;
use crate::http::problem::render_poem_error;
use crate::ratelimit::middleware::RateLimit;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::routes::RouteTable;

/// What every request handler can reach: configuration, database and token keys.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The fields behind [`AppState`].
pub struct Inner {
    /// The configuration this instance started with.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// Access-token signing and verification.
    pub tokens: TokenKeys,
    /// This app's metrics.
    pub metrics: Arc<Metrics>,
    /// The two-level cache.
    pub cache: Arc<crate::cache::Cache>,
    /// The shared Redis connection, when `REDIS_URL` is set.
    pub redis: Option<Arc<crate::redis_client::Redis>>,
    /// Cluster-wide rate limits.
    pub rate_limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Set on SIGTERM: readiness answers 503 and responses close their connections.
    pub draining: AtomicBool,
    /// Requests being served now (for the shutdown log).
    pub in_flight: AtomicUsize,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Connects to the database, applies migrations and loads the token key.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new(&config.instance_id));
        let db = crate::db::connect(&config, metrics.clone()).await?;
        db.migrate().await.context("applying migrations")?;
        let secret = jwt_secret(&config)?;
        let tokens = TokenKeys::new(&secret, config.access_token_ttl);
        let redis = match &config.redis_url {
            Some(url) => Some(
                crate::redis_client::Redis::connect(
                    url,
                    &config.redis_key_prefix,
                    config.redis_timeout,
                )
                .await?,
            ),
            None => None,
        };
        let cache = crate::cache::Cache::new(&config, redis.clone(), metrics.clone());
        let rate_limiter = crate::ratelimit::RateLimiter::new(
            config.rate_limits.clone(),
            redis.clone(),
            metrics.clone(),
        );
        Ok(Self(Arc::new(Inner {
            config,
            db,
            tokens,
            metrics,
            cache,
            redis,
            rate_limiter,
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        })))
    }

    /// Whether the instance is draining (shutting down).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// The JWT key: configured, or generated once and kept (mode 0600) in the data directory.
fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    match &config.jwt_secret {
        JwtSecret::Configured(secret) => Ok(secret.clone()),
        JwtSecret::KeptInDataDir => {
            let dir = config
                .data_dir()
                .context("JWT_SECRET: must be set when the database is not a SQLite file")?;
            let path = dir.join("jwt_secret");
            match std::fs::read(&path) {
                Ok(secret) if secret.len() >= 32 => Ok(secret),
                Ok(_) => anyhow::bail!("JWT_SECRET: {} is shorter than 32 bytes", path.display()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    let secret: [u8; 48] = rand::random();
                    let encoded = hex::encode(secret).into_bytes();
                    write_private(&path, &encoded)
                        .with_context(|| format!("JWT_SECRET: cannot write {}", path.display()))?;
                    Ok(encoded)
                }
                Err(err) => {
                    Err(err).with_context(|| format!("JWT_SECRET: cannot read {}", path.display()))
                }
            }
        }
    }
}

fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

/// The public route tree: API, OpenAPI documents, Swagger UI and health, behind the middleware
/// stack.
pub fn routes(state: AppState) -> impl Endpoint {
    let api = crate::openapi::service(state.clone());
    let route_table = RouteTable::from_spec(&api.spec());
    let spec_json = api.spec_endpoint();
    let spec_yaml = api.spec_endpoint_yaml();
    let docs = api.swagger_ui();
    let tree = Route::new()
        .nest("/", api)
        .at("/api/v1/openapi.json", spec_json)
        .at("/api/v1/openapi.yaml", spec_yaml)
        .nest("/docs", docs);
    with_middleware(state, route_table, tree)
}

/// Wraps an endpoint in the middleware stack, outermost first: compression, observation
/// (request id, client address, trace, metrics, access log, Sentry), state, security headers,
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
    endpoint
        .with(BodyLimit::new(max_body))
        .with(CatchPanic::new().with_handler(panic_response))
        .catch_all_error(|err| async move { render_poem_error(err) })
        .with(Timeout::new(state.config.request_timeout))
        .with(RateLimit::new(state.clone()))
        .with(HeadLimit::new(
            state.config.max_uri_bytes,
            state.config.max_header_bytes,
        ))
        .with(SecurityHeaders::new(state.config.hsts_max_age))
        // Without a configured origin no CORS header is sent: browsers keep other sites out.
        .with_if(cors_enabled, cors)
        .data(state.clone())
        .with(Observe::new(state, route_table))
        .with(Compression::new())
}

/// The admin route tree: `/metrics` (Prometheus text) and the health checks.
pub fn admin_routes(state: AppState) -> impl Endpoint {
    Route::new()
        .at(
            "/metrics",
            poem::endpoint::make_sync({
                let state = state.clone();
                move |_| {
                    let body = state
                        .metrics
                        .render(state.db.pool_stats(), state.cache.l1_entries());
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

/// A server started by [`start`]: its addresses, and a handle to stop it.
pub struct RunningServer {
    /// The address the API listens on.
    pub addr: std::net::SocketAddr,
    /// The address the admin listener (`/metrics`, health) listens on.
    pub admin_addr: std::net::SocketAddr,
    /// The shared state (for tests that look inside).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    admin_shutdown: Option<oneshot::Sender<()>>,
    admin_task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, waits for in-flight requests (up to `TASKLIGHT_SHUTDOWN_TIMEOUT_MS`),
    /// then stops the admin listener and closes the pool.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let Some(tx) = self.admin_shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.admin_task).await;
        self.state.db.close().await;
    }

    /// The graceful shutdown, each phase logged: readiness turns 503 at once while the instance
    /// keeps serving for the drain delay (cut short by `skip_delay`, a second signal), then the
    /// listener closes and in-flight requests get the shutdown timeout to finish.
    pub async fn drain_and_stop(self, skip_delay: impl Future<Output = ()>) {
        let state = self.state.clone();
        let config = &state.config;
        state.draining.store(true, Ordering::Relaxed);
        tracing::info!(
            phase = "draining",
            drain_delay_ms = config.drain_delay.as_millis() as u64,
            in_flight = state.in_flight.load(Ordering::Relaxed),
            "shutdown: readiness answers 503; still serving during the drain delay (a second signal skips it)"
        );
        tokio::select! {
            () = tokio::time::sleep(config.drain_delay) => {}
            () = skip_delay => tracing::info!(phase = "draining", "shutdown: second signal; drain delay skipped"),
        }
        let started = std::time::Instant::now();
        tracing::info!(
            phase = "closing",
            in_flight = state.in_flight.load(Ordering::Relaxed),
            shutdown_timeout_ms = config.shutdown_timeout.as_millis() as u64,
            "shutdown: listener closed; waiting for in-flight requests"
        );
        self.stop().await;
        let left = state.in_flight.load(Ordering::Relaxed);
        let waited_ms = started.elapsed().as_millis() as u64;
        if left == 0 {
            tracing::info!(
                phase = "closed",
                waited_ms,
                "shutdown: every in-flight request finished; database pool closed"
            );
        } else {
            tracing::warn!(
                phase = "closed",
                waited_ms,
                cut_off = left,
                "shutdown: the timeout cut off requests still running"
            );
        }
    }
}

/// Connects, migrates and serves on `listen` until [`RunningServer::stop`].
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let state = AppState::new(config).await?;
    let acceptor = TcpListener::bind(state.config.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("TASKLIGHT_LISTEN: cannot listen on {}", state.config.listen))?;
    let admin_acceptor = TcpListener::bind(state.config.admin_listen)
        .into_acceptor()
        .await
        .with_context(|| {
            format!(
                "TASKLIGHT_ADMIN_LISTEN: cannot listen on {}",
                state.config.admin_listen
            )
        })?;
    let addr = socket_addr(&acceptor)?;
    let admin_addr = socket_addr(&admin_acceptor)?;
    crate::idempotency::spawn_sweeper(state.db.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let timeout = state.config.shutdown_timeout;
    let task = tokio::spawn(run(acceptor, routes(state.clone()), rx, timeout));
    let (admin_tx, admin_rx) = oneshot::channel::<()>();
    let admin_task = tokio::spawn(run(
        admin_acceptor,
        admin_routes(state.clone()),
        admin_rx,
        Duration::from_secs(1),
    ));
    Ok(RunningServer {
        addr,
        admin_addr,
        state,
        shutdown: Some(tx),
        task,
        admin_shutdown: Some(admin_tx),
        admin_task,
    })
}

fn socket_addr(acceptor: &TcpAcceptor) -> anyhow::Result<std::net::SocketAddr> {
    acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .context("the listener has no socket address")
}

async fn run(
    acceptor: TcpAcceptor,
    endpoint: impl Endpoint + 'static,
    shutdown: oneshot::Receiver<()>,
    timeout: Duration,
) -> std::io::Result<()> {
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            endpoint,
            async {
                let _ = shutdown.await;
            },
            Some(timeout),
        )
        .await
}

/// `tasklight serve`: start, print where Swagger UI is, and stop on SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let server = start(config).await?;
    let host = match server.addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        ip => ip.to_string(),
    };
    tracing::info!(
        listen = %server.addr,
        admin_listen = %server.admin_addr,
        instance_id = %server.state.config.instance_id,
        database = ?server.state.db.backend(),
        "tasklight is serving: Swagger UI at http://{host}:{}/docs",
        server.addr.port()
    );
    shutdown_signal().await;
    server.drain_and_stop(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// `tasklight migrate`.
pub async fn migrate_only(config: &Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&config.instance_id));
    let db = crate::db::connect(config, metrics).await?;
    db.migrate().await.context("applying migrations")?;
    db.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// `tasklight create-admin`.
pub async fn create_admin(
    config: &Config,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    let state = AppState::new(config.clone()).await?;
    let outcome = crate::users::service::create_or_promote_admin(&state, email, name, password)
        .await
        .map_err(|err| match err {
            crate::error::AppError::Validation(fields) => anyhow::anyhow!(
                "{}",
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => anyhow::Error::new(other),
        })?;
    state.db.close().await;
    println!("{outcome}");
    Ok(())
}
