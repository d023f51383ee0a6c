//! The state every request handler shares, built once at start-up: configuration, the domain
//! context (database, cache, metrics), authentication, Redis, the rate limiter and the drain
//! flag. It imports no API or router module; the router and the APIs import it.

use std::sync::Arc;

use anyhow::Context;

use crate::auth::service::AuthContext;
use crate::auth::tokens::TokenKeys;
use crate::cache::Cache;
use crate::config::{Config, JwtSecret};
use crate::domain::DomainContext;
use crate::events::feed::Feed;
use crate::events::signal::EventSignal;
use crate::events::slots::StreamSlots;
use crate::http::drain::Drain;
use crate::mail::Mailer;
use crate::ratelimit::RateLimiter;
use crate::redis_client::Redis;
use crate::telemetry::metrics::Metrics;
use crate::verification::service::Verifier;
use crate::webhooks::delivery::WebhookRuntime;

/// What every request handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// The fields behind [`AppState`].
pub struct SharedState {
    /// The configuration this instance started with.
    pub config: Config,
    /// What domain functions work with: database, cache, metrics, instance id.
    pub domain: DomainContext,
    /// What the authentication rules work with (token keys, per-account limits).
    pub auth: AuthContext,
    /// The shared Redis connection, when `REDIS_URL` is set.
    pub redis: Option<Arc<Redis>>,
    /// Cluster-wide rate limits.
    pub rate_limiter: Arc<RateLimiter>,
    /// Set on SIGTERM: readiness answers 503 and responses close their connections; counts
    /// the requests being served.
    pub drain: Arc<Drain>,
    /// This instance's feed of events, which its event streams follow.
    pub feed: Arc<Feed>,
    /// The per-user limit of open event streams.
    pub stream_slots: Arc<StreamSlots>,
    /// Webhook delivery (dispatcher and workers) of this instance.
    pub webhooks: Arc<WebhookRuntime>,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl AppState {
    /// Connects to the database, applies migrations, loads the token key and, when `REDIS_URL`
    /// is set, connects to Redis.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let (domain, redis) = open_domain(&config).await?;
        let secret = jwt_secret(&config)?;
        let tokens = Arc::new(TokenKeys::new(&secret, config.access_token_ttl));
        let rate_limiter = RateLimiter::new(
            config.rate_limits.clone(),
            redis.clone(),
            domain.metrics.clone(),
        );
        domain.events.subscribe();
        let feed = Feed::start(domain.clone(), &config.events)
            .await
            .context("reading the outbox's head")?;
        let stream_slots = StreamSlots::new(config.events.max_streams_per_user, redis.clone());
        let webhooks = WebhookRuntime::start(domain.clone(), &feed, &config.webhooks)
            .context("starting webhook delivery")?;
        let verifier = Verifier {
            mailer: Mailer::new(config.smtp.as_ref())?,
            ttl: config.email_verification_ttl,
        };
        let auth = AuthContext {
            domain: domain.clone(),
            tokens,
            rate_limiter: rate_limiter.clone(),
            refresh_token_ttl: config.refresh_token_ttl,
            verifier,
        };
        Ok(Self(Arc::new(SharedState {
            config,
            domain,
            auth,
            redis,
            rate_limiter,
            drain: Arc::new(Drain::default()),
            feed,
            stream_slots,
            webhooks,
        })))
    }
}

/// The database (migrated), Redis when `REDIS_URL` is set, and the domain context over them,
/// without the background work of a serving instance (event feed, webhook delivery): what the
/// operator commands (`create-admin`, `verify-email`) need, so that a one-off command beside a
/// running instance adds no pollers of its own. Events it writes still reach the instances,
/// through Redis's signal or their next poll.
pub async fn open_domain(config: &Config) -> anyhow::Result<(DomainContext, Option<Arc<Redis>>)> {
    let metrics = Arc::new(Metrics::new(&config.instance_id));
    let db = crate::db::connect(config, metrics.clone()).await?;
    db.migrate().await.context("applying migrations")?;
    let redis = match &config.redis_url {
        Some(url) => {
            Some(Redis::connect(url, &config.redis_key_prefix, config.redis_timeout).await?)
        }
        None => None,
    };
    let db = match &config.read_replica {
        Some(replica) => db.with_read_replica(
            replica,
            config.db_max_connections,
            config.db_acquire_timeout,
            redis.clone(),
        )?,
        None => db,
    };
    let cache = Cache::new(config, redis.clone(), metrics.clone());
    let domain = DomainContext {
        db,
        cache,
        metrics,
        instance_id: config.instance_id.as_str().into(),
        events: EventSignal::new(redis.clone()),
    };
    Ok((domain, redis))
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
