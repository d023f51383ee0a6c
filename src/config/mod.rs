//! Configuration, read once from the environment at start-up.
//!
//! Every variable has a sensible default except where production needs a decision (`JWT_SECRET`
//! with PostgreSQL). A bad value is reported as one line naming the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration value that cannot be used; `Display` names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it, and what would be accepted.
    pub problem: String,
}

/// Which database the service uses, chosen by the scheme of `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://` or `postgresql://`.
    Postgres(String),
    /// `sqlite://path` (relative to the working directory) or `sqlite::memory:`.
    Sqlite(String),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default; what Loki queries read).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// Where the HMAC key for access tokens comes from.
#[derive(Clone)]
pub enum JwtSecret {
    /// Given in `JWT_SECRET`.
    Configured(Vec<u8>),
    /// Embedded mode without `JWT_SECRET`: generated once and kept in the data directory.
    KeptInDataDir,
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Configured(_) => f.write_str("Configured(<redacted>)"),
            Self::KeptInDataDir => f.write_str("KeptInDataDir"),
        }
    }
}

/// How traces are sampled (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio` with the ratio in the argument.
    Ratio(f64),
    /// `parentbased_always_on` (the default).
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`.
    ParentBasedRatio(f64),
}

/// Trace export, on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The OTLP/gRPC endpoint, such as `http://jaeger:4317`.
    pub endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// `deployment.environment.name`.
    pub environment: String,
    /// The sampler.
    pub sampling: Sampling,
}

/// Error reporting, on when `SENTRY_DSN` is set.
#[derive(Clone)]
pub struct SentryConfig {
    /// The DSN (holds a key: never logged).
    pub dsn: String,
    /// `SENTRY_ENVIRONMENT`, or the deployment environment.
    pub environment: String,
    /// `SENTRY_SEND_DEFAULT_PII`: attach emails and client addresses (default false).
    pub send_pii: bool,
}

impl std::fmt::Debug for SentryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentryConfig")
            .field("dsn", &"<redacted>")
            .field("environment", &self.environment)
            .field("send_pii", &self.send_pii)
            .finish()
    }
}

/// The whole configuration of one instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Public API, docs and health (`TASKLIGHT_LISTEN`).
    pub listen: SocketAddr,
    /// Admin listener for `/metrics` and health (`TASKLIGHT_ADMIN_LISTEN`).
    pub admin_listen: SocketAddr,
    /// The database (`DATABASE_URL`).
    pub database_url: DatabaseUrl,
    /// A streaming replica of the PostgreSQL primary for reads that may be slightly stale
    /// (`DATABASE_READ_URL`), with when to stop using it.
    pub read_replica: Option<ReadReplicaConfig>,
    /// Largest number of pooled database connections (`TASKLIGHT_DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// How long a request waits for a pooled connection before a 503 (`TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS`).
    pub db_acquire_timeout: Duration,
    /// How long SQLite waits on a locked database (`TASKLIGHT_DB_BUSY_TIMEOUT_MS`).
    pub db_busy_timeout: Duration,
    /// Shared cache, rate limits and revocation (`REDIS_URL`); unset means in-process only.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (`TASKLIGHT_REDIS_KEY_PREFIX`, default `tasklight`);
    /// instances of one cluster share it.
    pub redis_key_prefix: String,
    /// Entries the in-process cache holds at most (`TASKLIGHT_CACHE_L1_CAPACITY`).
    pub cache_l1_capacity: u64,
    /// In-process cache lifetime, which bounds staleness (`TASKLIGHT_CACHE_L1_TTL_MS`).
    pub cache_l1_ttl: Duration,
    /// Redis cache lifetime (`TASKLIGHT_CACHE_L2_TTL_SECS`).
    pub cache_l2_ttl: Duration,
    /// This instance's name in logs, spans and metrics (`INSTANCE_ID`).
    pub instance_id: String,
    /// HMAC key for access tokens (`JWT_SECRET`).
    pub jwt_secret: JwtSecret,
    /// Access-token lifetime (`TASKLIGHT_ACCESS_TOKEN_TTL_SECS`).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime (`TASKLIGHT_REFRESH_TOKEN_TTL_SECS`).
    pub refresh_token_ttl: Duration,
    /// Largest accepted request body (`TASKLIGHT_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Largest accepted header section: every header's name and value plus 4 bytes a line
    /// (`TASKLIGHT_MAX_HEADER_BYTES`, 16384).
    pub max_header_bytes: usize,
    /// Longest accepted request target, path and query (`TASKLIGHT_MAX_URI_BYTES`, 8192).
    pub max_uri_bytes: usize,
    /// Log filter (`RUST_LOG`).
    pub log_filter: String,
    /// Log format (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// `service.name` in logs and traces (`OTEL_SERVICE_NAME`, default `tasklight`).
    pub service_name: String,
    /// Redis answers slower than this count as failures (`TASKLIGHT_REDIS_TIMEOUT_MS`, 250).
    pub redis_timeout: Duration,
    /// Rate-limit quotas.
    pub rate_limits: RateLimits,
    /// Peers whose `X-Forwarded-For` is believed (`TASKLIGHT_TRUSTED_PROXIES`: addresses or CIDR
    /// blocks, comma-separated; default none).
    pub trusted_proxies: Vec<IpBlock>,
    /// How long readiness answers 503 before the listener closes on SIGTERM
    /// (`TASKLIGHT_DRAIN_DELAY_MS`, 5000).
    pub drain_delay: Duration,
    /// How long in-flight requests may take to finish after the listener closes
    /// (`TASKLIGHT_SHUTDOWN_TIMEOUT_MS`, 10000).
    pub shutdown_timeout: Duration,
    /// Longest a request may take before it is answered 503 (`TASKLIGHT_REQUEST_TIMEOUT_MS`,
    /// 30000).
    pub request_timeout: Duration,
    /// Origins allowed to call the API from a browser (`TASKLIGHT_CORS_ALLOWED_ORIGINS`,
    /// comma-separated, such as `https://app.example.com`; default none: no CORS headers).
    pub cors_allowed_origins: Vec<String>,
    /// `Strict-Transport-Security` max-age in seconds, for a service reached over HTTPS
    /// (`TASKLIGHT_HSTS_MAX_AGE_SECS`, default 0: no header).
    pub hsts_max_age: u64,
    /// How long an invitation waits to be accepted (`TASKLIGHT_INVITATION_TTL_SECS`, default 14
    /// days).
    pub invitation_ttl: Duration,
    /// How long an email-verification link works (`TASKLIGHT_EMAIL_VERIFICATION_TTL_SECS`,
    /// default 24 hours).
    pub email_verification_ttl: Duration,
    /// How long an invitation that closed (answered, revoked, replaced, or expired while
    /// pending) is kept before housekeeping deletes it (`TASKLIGHT_INVITATION_RETENTION_SECS`,
    /// default 30 days).
    pub invitation_retention: Duration,
    /// Outgoing mail (`SMTP_URL`, `SMTP_FROM`, `TASKLIGHT_PUBLIC_URL`); unset: no mail is sent.
    pub smtp: Option<SmtpConfig>,
    /// The outbox and the live event streams.
    pub events: EventsConfig,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Trace export, if configured.
    pub traces: Option<TraceConfig>,
    /// Error reporting, if configured.
    pub sentry: Option<SentryConfig>,
}

/// The default SQLite location used when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tasklight.db";

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from a map (used by tests and tools).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let database_url = parse_database_url(
            env.get("DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        )?;
        let jwt_secret = jwt_secret(&env, &database_url)?;
        let telemetry = Telemetry::read(&env)?;
        Ok(Self {
            listen: parse_or(
                "TASKLIGHT_LISTEN",
                env.get("TASKLIGHT_LISTEN"),
                "0.0.0.0:8080",
            )?,
            admin_listen: parse_or(
                "TASKLIGHT_ADMIN_LISTEN",
                env.get("TASKLIGHT_ADMIN_LISTEN"),
                "127.0.0.1:9090",
            )?,
            read_replica: read_replica(&env, &database_url)?,
            database_url,
            db_max_connections: env.bounded("TASKLIGHT_DB_MAX_CONNECTIONS", 10, 1..=1000)?,
            db_acquire_timeout: env.millis("TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS", 5_000)?,
            db_busy_timeout: env.millis("TASKLIGHT_DB_BUSY_TIMEOUT_MS", 5_000)?,
            redis_url: env.get("REDIS_URL").map(parse_redis_url).transpose()?,
            redis_key_prefix: match env.get("TASKLIGHT_REDIS_KEY_PREFIX") {
                Some(prefix) => parse_key_prefix(prefix)?,
                None => "tasklight".to_owned(),
            },
            redis_timeout: env.millis("TASKLIGHT_REDIS_TIMEOUT_MS", 250)?,
            cache_l1_capacity: env.bounded(
                "TASKLIGHT_CACHE_L1_CAPACITY",
                100_000,
                1..=100_000_000,
            )?,
            cache_l1_ttl: env.millis("TASKLIGHT_CACHE_L1_TTL_MS", 5_000)?,
            cache_l2_ttl: Duration::from_secs(env.bounded(
                "TASKLIGHT_CACHE_L2_TTL_SECS",
                300,
                1..=86_400,
            )?),
            instance_id: match env.get("INSTANCE_ID") {
                Some(id) => parse_instance_id(id)?,
                None => default_instance_id(),
            },
            jwt_secret,
            access_token_ttl: Duration::from_secs(env.bounded(
                "TASKLIGHT_ACCESS_TOKEN_TTL_SECS",
                900,
                30..=86_400,
            )?),
            refresh_token_ttl: Duration::from_secs(env.bounded(
                "TASKLIGHT_REFRESH_TOKEN_TTL_SECS",
                30 * 86_400,
                60..=365 * 86_400,
            )?),
            max_body_bytes: env.bounded(
                "TASKLIGHT_MAX_BODY_BYTES",
                1024 * 1024,
                1024..=64 * 1024 * 1024,
            )?,
            // hyper refuses a header section over about 400 KB before we see it, and a target
            // over 64 KB, so larger limits would not take effect.
            max_header_bytes: env.bounded(
                "TASKLIGHT_MAX_HEADER_BYTES",
                16 * 1024,
                1024..=256 * 1024,
            )?,
            max_uri_bytes: env.bounded("TASKLIGHT_MAX_URI_BYTES", 8 * 1024, 256..=60 * 1024)?,
            log_filter: env.get("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
            log_format: log_format(&env)?,
            service_name: telemetry.service_name,
            rate_limits: RateLimits::from_lookup(|name| env.get(name))?,
            trusted_proxies: trusted_proxies(&env)?,
            drain_delay: Duration::from_millis(env.bounded(
                "TASKLIGHT_DRAIN_DELAY_MS",
                5_000,
                0..=600_000,
            )?),
            shutdown_timeout: env.millis("TASKLIGHT_SHUTDOWN_TIMEOUT_MS", 10_000)?,
            request_timeout: env.millis("TASKLIGHT_REQUEST_TIMEOUT_MS", 30_000)?,
            cors_allowed_origins: cors_allowed_origins(&env)?,
            hsts_max_age: env.bounded("TASKLIGHT_HSTS_MAX_AGE_SECS", 0, 0..=63_072_000)?,
            invitation_ttl: Duration::from_secs(env.bounded(
                "TASKLIGHT_INVITATION_TTL_SECS",
                14 * 86_400,
                1..=365 * 86_400,
            )?),
            email_verification_ttl: Duration::from_secs(env.bounded(
                "TASKLIGHT_EMAIL_VERIFICATION_TTL_SECS",
                86_400,
                1..=30 * 86_400,
            )?),
            invitation_retention: Duration::from_secs(env.bounded(
                "TASKLIGHT_INVITATION_RETENTION_SECS",
                30 * 86_400,
                3_600..=3_660 * 86_400,
            )?),
            smtp: mail::smtp(
                env.get("SMTP_URL"),
                env.get("SMTP_FROM"),
                env.get("TASKLIGHT_PUBLIC_URL"),
            )?,
            events: EventsConfig::from_lookup(|name| env.get(name))?,
            webhooks: WebhookConfig::from_lookup(|name| env.get(name))?,
            traces: telemetry.traces,
            sentry: telemetry.sentry,
        })
    }

    /// The SQLite database file, when `DATABASE_URL` names one (not PostgreSQL, not in memory).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.database_url {
            DatabaseUrl::Sqlite(url) => sqlite_path(url),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// The directory that holds the SQLite file and the generated JWT key, if any.
    pub fn data_dir(&self) -> Option<PathBuf> {
        match &self.database_url {
            DatabaseUrl::Sqlite(url) => sqlite_path(url)
                .and_then(|path| path.parent().map(PathBuf::from))
                .map(|dir| {
                    if dir.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        dir
                    }
                }),
            DatabaseUrl::Postgres(_) => None,
        }
    }
}

/// The environment as configuration reads it: empty values count as unset.
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A variable's value, if set and not blank.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    /// The non-blank items of a comma-separated list, trimmed; empty when unset.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A whole number in `range`, `default` when unset.
    fn bounded<T>(
        &self,
        variable: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        bounded(variable, self.get(variable), default, range)
    }

    /// A duration in milliseconds (1 to 600000), `default` when unset.
    fn millis(&self, variable: &'static str, default: u64) -> Result<Duration, ConfigError> {
        millis(variable, self.get(variable), default)
    }
}

/// Where and when reads go to a replica.
#[derive(Debug, Clone)]
pub struct ReadReplicaConfig {
    /// `DATABASE_READ_URL`: a PostgreSQL streaming replica of `DATABASE_URL`.
    pub url: String,
    /// `TASKLIGHT_READ_MAX_LAG_MS` (default 5000): behind by more, reads go to the primary.
    pub max_lag: Duration,
    /// `TASKLIGHT_READ_YOUR_WRITES_TTL_MS` (default 60000): how long a user's last write
    /// position is kept; until the replica has replayed it, that user reads from the primary.
    pub read_your_writes_ttl: Duration,
}

/// `DATABASE_READ_URL` and its settings: only beside a PostgreSQL `DATABASE_URL`.
fn read_replica<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    database_url: &DatabaseUrl,
) -> Result<Option<ReadReplicaConfig>, ConfigError> {
    let Some(url) = env.get("DATABASE_READ_URL") else {
        return Ok(None);
    };
    let problem = |problem: &str| ConfigError {
        variable: "DATABASE_READ_URL",
        problem: problem.to_owned(),
    };
    if !matches!(database_url, DatabaseUrl::Postgres(_)) {
        return Err(problem(
            "is only used with a PostgreSQL DATABASE_URL (a replica of it); SQLite has none",
        ));
    }
    let parsed = parse_database_url(url).map_err(|err| problem(&err.problem))?;
    match parsed {
        DatabaseUrl::Postgres(url) => Ok(Some(ReadReplicaConfig {
            url,
            max_lag: env.millis("TASKLIGHT_READ_MAX_LAG_MS", 5_000)?,
            read_your_writes_ttl: env.millis("TASKLIGHT_READ_YOUR_WRITES_TTL_MS", 60_000)?,
        })),
        DatabaseUrl::Sqlite(_) => Err(problem("must be a postgres:// URL")),
    }
}

/// `JWT_SECRET`: at least 32 bytes; required with PostgreSQL, so that every instance signs
/// with one key; with SQLite, generated and kept in the data directory when unset.
fn jwt_secret<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    database_url: &DatabaseUrl,
) -> Result<JwtSecret, ConfigError> {
    match env.get("JWT_SECRET") {
        Some(secret) if secret.len() >= 32 => Ok(JwtSecret::Configured(secret.into_bytes())),
        Some(secret) => Err(ConfigError {
            variable: "JWT_SECRET",
            problem: format!("must be at least 32 bytes, got {}", secret.len()),
        }),
        None if matches!(database_url, DatabaseUrl::Postgres(_)) => Err(ConfigError {
            variable: "JWT_SECRET",
            problem: "is required with PostgreSQL, so that every instance signs with one key \
                      (at least 32 bytes, e.g. `openssl rand -base64 48`)"
                .into(),
        }),
        None => Ok(JwtSecret::KeptInDataDir),
    }
}

/// The OpenTelemetry and Sentry settings, which share the service name and environment.
struct Telemetry {
    service_name: String,
    traces: Option<TraceConfig>,
    sentry: Option<SentryConfig>,
}

impl Telemetry {
    fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| "tasklight".to_owned());
        let environment = environment(
            env.get("OTEL_RESOURCE_ATTRIBUTES").as_deref(),
            env.get("SENTRY_ENVIRONMENT"),
        )?;
        let traces = match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(endpoint) => Some(TraceConfig {
                endpoint: parse_endpoint(endpoint)?,
                service_name: service_name.clone(),
                environment: environment.clone(),
                sampling: parse_sampling(
                    env.get("OTEL_TRACES_SAMPLER").as_deref(),
                    env.get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
                )?,
            }),
            None => None,
        };
        let send_pii = match env.get("SENTRY_SEND_DEFAULT_PII").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => {
                return Err(ConfigError {
                    variable: "SENTRY_SEND_DEFAULT_PII",
                    problem: "must be `true` or `false`".into(),
                });
            }
        };
        let sentry = match env.get("SENTRY_DSN") {
            Some(dsn) => Some(SentryConfig {
                dsn: parse_sentry_dsn(dsn)?,
                environment,
                send_pii,
            }),
            None => None,
        };
        Ok(Self {
            service_name,
            traces,
            sentry,
        })
    }
}

/// `TASKLIGHT_TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks.
fn trusted_proxies<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<IpBlock>, ConfigError> {
    env.list("TASKLIGHT_TRUSTED_PROXIES")
        .iter()
        .map(|item| item.parse())
        .collect::<Result<Vec<IpBlock>, String>>()
        .map_err(|problem| ConfigError {
            variable: "TASKLIGHT_TRUSTED_PROXIES",
            problem,
        })
}

/// `TASKLIGHT_CORS_ALLOWED_ORIGINS`: comma-separated `scheme://host[:port]` origins.
fn cors_allowed_origins<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<String>, ConfigError> {
    env.list("TASKLIGHT_CORS_ALLOWED_ORIGINS")
        .into_iter()
        .map(|origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.trim_end_matches('/').contains(['*', ' '])
                && origin
                    .split("://")
                    .nth(1)
                    .is_some_and(|host| !host.is_empty() && !host.contains('/'));
            if valid {
                Ok(origin)
            } else {
                Err(ConfigError {
                    variable: "TASKLIGHT_CORS_ALLOWED_ORIGINS",
                    problem: format!(
                        "`{origin}` is not an origin: write scheme://host[:port], such as \
                         https://app.example.com (no wildcards, no path)"
                    ),
                })
            }
        })
        .collect()
}

/// `LOG_FORMAT`: `json` (the default) or `pretty`.
fn log_format<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<LogFormat, ConfigError> {
    match env.get("LOG_FORMAT").as_deref() {
        None | Some("json") => Ok(LogFormat::Json),
        Some("pretty") => Ok(LogFormat::Pretty),
        Some(other) => Err(ConfigError {
            variable: "LOG_FORMAT",
            problem: format!("must be `json` or `pretty`, got `{other}`"),
        }),
    }
}

mod events;
pub mod ip_block;
mod limits;
mod mail;
mod parse;
#[cfg(test)]
mod tests;
mod webhooks;

pub use events::EventsConfig;
pub use ip_block::IpBlock;
pub use limits::{Quota, RateLimits};
pub use mail::SmtpConfig;
pub use parse::sqlite_path;
use parse::{
    bounded, default_instance_id, environment, millis, parse_database_url, parse_endpoint,
    parse_instance_id, parse_key_prefix, parse_or, parse_redis_url, parse_sampling,
    parse_sentry_dsn,
};
pub use webhooks::WebhookConfig;
