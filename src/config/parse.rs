//! Parsing and checking of single configuration values; each error names its variable.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, DatabaseUrl, Sampling};

/// The file behind a `sqlite://` URL, or `None` for an in-memory database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

pub(super) fn parse_database_url(url: String) -> Result<DatabaseUrl, ConfigError> {
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
pub(super) fn environment(
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

pub(super) fn parse_endpoint(endpoint: String) -> Result<String, ConfigError> {
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

pub(super) fn parse_sampling(
    sampler: Option<&str>,
    arg: Option<&str>,
) -> Result<Sampling, ConfigError> {
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

pub(super) fn parse_sentry_dsn(dsn: String) -> Result<String, ConfigError> {
    match dsn.parse::<sentry::types::Dsn>() {
        Ok(_) => Ok(dsn),
        Err(_) => Err(ConfigError {
            variable: "SENTRY_DSN",
            problem: "is not a valid Sentry DSN (https://<key>@<host>/<project>)".into(),
        }),
    }
}

pub(super) fn parse_redis_url(url: String) -> Result<String, ConfigError> {
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

pub(super) fn parse_key_prefix(prefix: String) -> Result<String, ConfigError> {
    let valid = (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if valid {
        Ok(prefix)
    } else {
        Err(ConfigError {
            variable: "TASKLIGHT_REDIS_KEY_PREFIX",
            problem: "must be 1 to 64 characters from [A-Za-z0-9._:-]".into(),
        })
    }
}

pub(super) fn parse_instance_id(id: String) -> Result<String, ConfigError> {
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
pub(super) fn default_instance_id() -> String {
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

pub(super) fn parse_or<T: std::str::FromStr>(
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

pub(super) fn bounded<T>(
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

pub(super) fn millis(
    variable: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<Duration, ConfigError> {
    bounded(variable, value, default, 1..=600_000).map(Duration::from_millis)
}
