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
    /// Largest number of pooled database connections (`TASKLIGHT_DB_MAX_CONNECTIONS`).
    pub db_max_connections: u32,
    /// How long a request waits for a pooled connection before a 503 (`TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS`).
    pub db_acquire_timeout: Duration,
    /// How long SQLite waits on a locked database (`TASKLIGHT_DB_BUSY_TIMEOUT_MS`).
    pub db_busy_timeout: Duration,
    /// Shared cache, rate limits and revocation (`REDIS_URL`); unset means in-process only.
    pub redis_url: Option<String>,
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
    /// Log filter (`RUST_LOG`).
    pub log_filter: String,
    /// Log format (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// `service.name` in logs and traces (`OTEL_SERVICE_NAME`, default `tasklight`).
    pub service_name: String,
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
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let database_url = parse_database_url(
            get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        )?;
        let jwt_secret = match get("JWT_SECRET") {
            Some(secret) if secret.len() >= 32 => JwtSecret::Configured(secret.into_bytes()),
            Some(secret) => {
                return Err(ConfigError {
                    variable: "JWT_SECRET",
                    problem: format!("must be at least 32 bytes, got {}", secret.len()),
                });
            }
            None if matches!(database_url, DatabaseUrl::Postgres(_)) => {
                return Err(ConfigError {
                    variable: "JWT_SECRET",
                    problem:
                        "is required with PostgreSQL, so that every instance signs with one key \
                              (at least 32 bytes, e.g. `openssl rand -base64 48`)"
                            .into(),
                });
            }
            None => JwtSecret::KeptInDataDir,
        };
        let service_name = get("OTEL_SERVICE_NAME").unwrap_or_else(|| "tasklight".to_owned());
        let environment = environment(
            get("OTEL_RESOURCE_ATTRIBUTES").as_deref(),
            get("SENTRY_ENVIRONMENT"),
        )?;
        let traces = match get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(endpoint) => Some(TraceConfig {
                endpoint: parse_endpoint(endpoint)?,
                service_name: service_name.clone(),
                environment: environment.clone(),
                sampling: parse_sampling(
                    get("OTEL_TRACES_SAMPLER").as_deref(),
                    get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
                )?,
            }),
            None => None,
        };
        let send_pii = match get("SENTRY_SEND_DEFAULT_PII").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => {
                return Err(ConfigError {
                    variable: "SENTRY_SEND_DEFAULT_PII",
                    problem: "must be `true` or `false`".into(),
                });
            }
        };
        let sentry = match get("SENTRY_DSN") {
            Some(dsn) => Some(SentryConfig {
                dsn: parse_sentry_dsn(dsn)?,
                environment: environment.clone(),
                send_pii,
            }),
            None => None,
        };
        Ok(Self {
            service_name,
            traces,
            sentry,
            listen: parse_or("TASKLIGHT_LISTEN", get("TASKLIGHT_LISTEN"), "0.0.0.0:8080")?,
            admin_listen: parse_or(
                "TASKLIGHT_ADMIN_LISTEN",
                get("TASKLIGHT_ADMIN_LISTEN"),
                "127.0.0.1:9090",
            )?,
            database_url,
            db_max_connections: bounded(
                "TASKLIGHT_DB_MAX_CONNECTIONS",
                get("TASKLIGHT_DB_MAX_CONNECTIONS"),
                10,
                1..=1000,
            )?,
            db_acquire_timeout: millis(
                "TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS",
                get("TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS"),
                5_000,
            )?,
            db_busy_timeout: millis(
                "TASKLIGHT_DB_BUSY_TIMEOUT_MS",
                get("TASKLIGHT_DB_BUSY_TIMEOUT_MS"),
                5_000,
            )?,
            redis_url: get("REDIS_URL").map(parse_redis_url).transpose()?,
            instance_id: match get("INSTANCE_ID") {
                Some(id) => parse_instance_id(id)?,
                None => default_instance_id(),
            },
            jwt_secret,
            access_token_ttl: Duration::from_secs(bounded(
                "TASKLIGHT_ACCESS_TOKEN_TTL_SECS",
                get("TASKLIGHT_ACCESS_TOKEN_TTL_SECS"),
                900,
                30..=86_400,
            )?),
            refresh_token_ttl: Duration::from_secs(bounded(
                "TASKLIGHT_REFRESH_TOKEN_TTL_SECS",
                get("TASKLIGHT_REFRESH_TOKEN_TTL_SECS"),
                30 * 86_400,
                60..=365 * 86_400,
            )?),
            max_body_bytes: bounded(
                "TASKLIGHT_MAX_BODY_BYTES",
                get("TASKLIGHT_MAX_BODY_BYTES"),
                1024 * 1024,
                1024..=64 * 1024 * 1024,
            )?,
            log_filter: get("RUST_LOG").unwrap_or_else(|| "info".to_owned()),
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("json") => LogFormat::Json,
                Some("pretty") => LogFormat::Pretty,
                Some(other) => {
                    return Err(ConfigError {
                        variable: "LOG_FORMAT",
                        problem: format!("must be `json` or `pretty`, got `{other}`"),
                    });
                }
            },
        })
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

/// The file behind a `sqlite://` URL, or `None` for an in-memory database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn parse_database_url(url: String) -> Result<DatabaseUrl, ConfigError> {
    let problem = |problem: String| ConfigError {
        variable: "DATABASE_URL",
        problem,
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url::Url::parse(&url).map_err(|err| problem(format!("is not a valid URL: {err}")))?;
        Ok(DatabaseUrl::Postgres(url))
    } else if url.starts_with("sqlite:") {
        Ok(DatabaseUrl::Sqlite(url))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(problem(format!(
            "unsupported scheme `{scheme}`; use `postgres://...` or `sqlite://path`"
        )))
    }
}

/// `deployment.environment.name` from `OTEL_RESOURCE_ATTRIBUTES`, else `SENTRY_ENVIRONMENT`,
/// else `development`.
fn environment(
    resource_attributes: Option<&str>,
    sentry_environment: Option<String>,
) -> Result<String, ConfigError> {
    let mut from_resource = None;
    for pair in resource_attributes.unwrap_or_default().split(',') {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ConfigError {
                variable: "OTEL_RESOURCE_ATTRIBUTES",
                problem: format!("`{pair}` is not `key=value`"),
            });
        };
        if matches!(
            key.trim(),
            "deployment.environment.name" | "deployment.environment"
        ) {
            from_resource = Some(value.trim().to_owned());
        }
    }
    Ok(from_resource
        .or(sentry_environment)
        .unwrap_or_else(|| "development".to_owned()))
}

fn parse_endpoint(endpoint: String) -> Result<String, ConfigError> {
    match url::Url::parse(&endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(endpoint),
        _ => Err(ConfigError {
            variable: "OTEL_EXPORTER_OTLP_ENDPOINT",
            problem: format!(
                "must be an http(s) URL such as http://localhost:4317, got `{endpoint}`"
            ),
        }),
    }
}

fn parse_sampling(sampler: Option<&str>, arg: Option<&str>) -> Result<Sampling, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match arg {
            None => Ok(1.0),
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError {
                    variable: "OTEL_TRACES_SAMPLER_ARG",
                    problem: format!("must be a number from 0 to 1, got `{raw}`"),
                }),
            },
        }
    };
    Ok(match sampler.unwrap_or("parentbased_always_on") {
        "always_on" => Sampling::AlwaysOn,
        "always_off" => Sampling::AlwaysOff,
        "traceidratio" => Sampling::Ratio(ratio()?),
        "parentbased_always_on" => Sampling::ParentBasedAlwaysOn,
        "parentbased_always_off" => Sampling::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => Sampling::ParentBasedRatio(ratio()?),
        other => {
            return Err(ConfigError {
                variable: "OTEL_TRACES_SAMPLER",
                problem: format!(
                    "unsupported sampler `{other}`; use always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                ),
            });
        }
    })
}

fn parse_sentry_dsn(dsn: String) -> Result<String, ConfigError> {
    match dsn.parse::<sentry::types::Dsn>() {
        Ok(_) => Ok(dsn),
        Err(_) => Err(ConfigError {
            variable: "SENTRY_DSN",
            problem: "is not a valid Sentry DSN (https://<key>@<host>/<project>)".into(),
        }),
    }
}

fn parse_redis_url(url: String) -> Result<String, ConfigError> {
    match url::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "redis" | "rediss") => Ok(url),
        Ok(parsed) => Err(ConfigError {
            variable: "REDIS_URL",
            problem: format!(
                "unsupported scheme `{}`; use `redis://` or `rediss://`",
                parsed.scheme()
            ),
        }),
        Err(err) => Err(ConfigError {
            variable: "REDIS_URL",
            problem: format!("is not a valid URL: {err}"),
        }),
    }
}

fn parse_instance_id(id: String) -> Result<String, ConfigError> {
    let valid = id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(id)
    } else {
        Err(ConfigError {
            variable: "INSTANCE_ID",
            problem: "must be at most 64 characters from [A-Za-z0-9._-]".into(),
        })
    }
}

/// Hostname plus a short random suffix, so two processes on one host never share an id.
fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(48)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tasklight".to_owned());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

fn parse_or<T: std::str::FromStr>(
    variable: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let raw = value.unwrap_or_else(|| default.to_owned());
    raw.trim().parse().map_err(|err| ConfigError {
        variable,
        problem: format!("cannot parse `{raw}`: {err}"),
    })
}

fn bounded<T>(
    variable: &'static str,
    value: Option<String>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = value else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => Err(ConfigError {
            variable,
            problem: format!(
                "must be a whole number from {} to {}, got `{raw}`",
                range.start(),
                range.end()
            ),
        }),
    }
}

fn millis(
    variable: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<Duration, ConfigError> {
    bounded(variable, value, default, 1..=600_000).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    #[test]
    fn defaults_select_embedded_sqlite_on_port_8080() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(
            config.database_url,
            DatabaseUrl::Sqlite(DEFAULT_DATABASE_URL.into())
        );
        assert_eq!(config.data_dir(), Some(PathBuf::from("data")));
        assert!(matches!(config.jwt_secret, JwtSecret::KeptInDataDir));
    }

    #[test]
    fn postgres_without_jwt_secret_names_the_variable() {
        let err = config(&[("DATABASE_URL", "postgres://localhost/db")]).unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn short_jwt_secret_is_rejected() {
        let err = config(&[("JWT_SECRET", "short")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "JWT_SECRET: must be at least 32 bytes, got 5"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("TASKLIGHT_LISTEN", "nowhere"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("INSTANCE_ID", "has space"),
            ("LOG_FORMAT", "xml"),
            ("TASKLIGHT_DB_MAX_CONNECTIONS", "0"),
            ("TASKLIGHT_DB_ACQUIRE_TIMEOUT_MS", "soon"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("SENTRY_DSN", "not a dsn"),
            ("SENTRY_SEND_DEFAULT_PII", "maybe"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{value}");
        }
    }

    #[test]
    fn samplers_follow_the_opentelemetry_names() {
        let with = |sampler: &str, arg: &str| {
            config(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
                ("OTEL_TRACES_SAMPLER", sampler),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ])
        };
        let sampling = |c: Config| c.traces.unwrap().sampling;
        assert_eq!(
            sampling(with("parentbased_traceidratio", "0.25").unwrap()),
            Sampling::ParentBasedRatio(0.25)
        );
        assert_eq!(
            sampling(with("always_off", "").unwrap()),
            Sampling::AlwaysOff
        );
        assert_eq!(
            with("traceidratio", "2").unwrap_err().variable,
            "OTEL_TRACES_SAMPLER_ARG"
        );
        assert_eq!(
            with("sometimes", "").unwrap_err().variable,
            "OTEL_TRACES_SAMPLER"
        );
    }

    #[test]
    fn environment_comes_from_resource_attributes_first() {
        let c = config(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "team=core,deployment.environment.name=staging",
            ),
            ("SENTRY_ENVIRONMENT", "prod"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
        ])
        .unwrap();
        assert_eq!(c.traces.unwrap().environment, "staging");
    }

    #[test]
    fn generated_instance_ids_differ() {
        assert_ne!(default_instance_id(), default_instance_id());
    }
}
