//! Configuration of webhook delivery.

use std::time::Duration;

use super::ConfigError;
use super::ip_block::IpBlock;
use super::parse::bounded;

/// The default retry schedule: the waits before the second to the eighth attempt. The last
/// attempt comes about 27.6 hours after the first (before jitter).
pub const DEFAULT_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Waits before each retry (`TASKLIGHT_WEBHOOK_RETRY_SCHEDULE`, comma-separated durations
    /// such as `5s,5m,2h`; default [`DEFAULT_RETRY_SCHEDULE`]). Each wait is varied by up to
    /// ±20% (jitter); after the last retry fails, the delivery is dead-lettered.
    pub retry_schedule: Vec<Duration>,
    /// Networks a destination may resolve to although they are private, loopback or link-local
    /// (`TASKLIGHT_WEBHOOK_ALLOWED_NETS`, CIDR blocks; default none).
    pub allowed_nets: Vec<IpBlock>,
    /// Whether plain `http://` destinations are accepted (`TASKLIGHT_WEBHOOK_ALLOW_HTTP`,
    /// default false: `https://` only).
    pub allow_http: bool,
    /// Connect timeout of a delivery (`TASKLIGHT_WEBHOOK_CONNECT_TIMEOUT_MS`, 5000).
    pub connect_timeout: Duration,
    /// Total timeout of a delivery, from connecting to the end of the answer
    /// (`TASKLIGHT_WEBHOOK_TIMEOUT_MS`, 15000).
    pub timeout: Duration,
    /// Consecutive failures that open an endpoint's circuit
    /// (`TASKLIGHT_WEBHOOK_BREAKER_FAILURES`, 5).
    pub breaker_failures: u32,
    /// How long an open circuit waits before it lets one probe through
    /// (`TASKLIGHT_WEBHOOK_BREAKER_COOLDOWN_MS`, 60000).
    pub breaker_cooldown: Duration,
    /// How long an endpoint may keep failing before it is disabled
    /// (`TASKLIGHT_WEBHOOK_DISABLE_AFTER_SECS`, 432000: five days).
    pub disable_after: Duration,
    /// How long the previous signing secret still signs after a rotation
    /// (`TASKLIGHT_WEBHOOK_SECRET_OVERLAP_SECS`, 86400).
    pub secret_overlap: Duration,
    /// Endpoints an instance delivers to at once (`TASKLIGHT_WEBHOOK_WORKERS`, 4).
    pub workers: u32,
    /// How long a worker holds an endpoint before another instance may take it over: the
    /// longest a delivery waits after its worker died (`TASKLIGHT_WEBHOOK_LEASE_MS`, 30000;
    /// longer than the timeout).
    pub lease: Duration,
    /// How long a finished delivery (delivered, or dead-lettered) is kept with its attempts
    /// before housekeeping deletes it (`TASKLIGHT_WEBHOOK_DELIVERY_RETENTION_SECS`, default 14
    /// days): the owner's window to read dead letters and redeliver them.
    pub delivery_retention: Duration,
}

impl WebhookConfig {
    pub(super) fn from_lookup(
        get: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        let millis = |name: &'static str, default: u64, min: u64, max: u64| {
            bounded(name, var(name), default, min..=max).map(Duration::from_millis)
        };
        let timeout = millis("TASKLIGHT_WEBHOOK_TIMEOUT_MS", 15_000, 100, 120_000)?;
        let lease = millis("TASKLIGHT_WEBHOOK_LEASE_MS", 30_000, 1_000, 3_600_000)?;
        if lease <= timeout {
            return Err(ConfigError {
                variable: "TASKLIGHT_WEBHOOK_LEASE_MS",
                problem: format!(
                    "must be longer than TASKLIGHT_WEBHOOK_TIMEOUT_MS ({} ms), got {} ms",
                    timeout.as_millis(),
                    lease.as_millis()
                ),
            });
        }
        Ok(Self {
            retry_schedule: retry_schedule(
                var("TASKLIGHT_WEBHOOK_RETRY_SCHEDULE")
                    .as_deref()
                    .unwrap_or(DEFAULT_RETRY_SCHEDULE),
            )?,
            allowed_nets: var("TASKLIGHT_WEBHOOK_ALLOWED_NETS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::parse)
                .collect::<Result<_, String>>()
                .map_err(|problem| ConfigError {
                    variable: "TASKLIGHT_WEBHOOK_ALLOWED_NETS",
                    problem,
                })?,
            allow_http: match var("TASKLIGHT_WEBHOOK_ALLOW_HTTP")
                .as_deref()
                .map(str::trim)
            {
                None | Some("false") | Some("0") => false,
                Some("true") | Some("1") => true,
                Some(other) => {
                    return Err(ConfigError {
                        variable: "TASKLIGHT_WEBHOOK_ALLOW_HTTP",
                        problem: format!("must be `true` or `false`, got `{other}`"),
                    });
                }
            },
            connect_timeout: millis("TASKLIGHT_WEBHOOK_CONNECT_TIMEOUT_MS", 5_000, 100, 60_000)?,
            timeout,
            breaker_failures: bounded(
                "TASKLIGHT_WEBHOOK_BREAKER_FAILURES",
                var("TASKLIGHT_WEBHOOK_BREAKER_FAILURES"),
                5,
                1..=1_000,
            )?,
            breaker_cooldown: millis(
                "TASKLIGHT_WEBHOOK_BREAKER_COOLDOWN_MS",
                60_000,
                100,
                86_400_000,
            )?,
            disable_after: Duration::from_secs(bounded(
                "TASKLIGHT_WEBHOOK_DISABLE_AFTER_SECS",
                var("TASKLIGHT_WEBHOOK_DISABLE_AFTER_SECS"),
                5 * 86_400,
                1..=365 * 86_400,
            )?),
            secret_overlap: Duration::from_secs(bounded(
                "TASKLIGHT_WEBHOOK_SECRET_OVERLAP_SECS",
                var("TASKLIGHT_WEBHOOK_SECRET_OVERLAP_SECS"),
                86_400,
                0..=30 * 86_400,
            )?),
            workers: bounded(
                "TASKLIGHT_WEBHOOK_WORKERS",
                var("TASKLIGHT_WEBHOOK_WORKERS"),
                4,
                1..=64,
            )?,
            lease,
            delivery_retention: Duration::from_secs(bounded(
                "TASKLIGHT_WEBHOOK_DELIVERY_RETENTION_SECS",
                var("TASKLIGHT_WEBHOOK_DELIVERY_RETENTION_SECS"),
                14 * 86_400,
                3_600..=3_660 * 86_400,
            )?),
        })
    }
}

/// `5s,5m,30m,2h`: durations in `ms`, `s`, `m`, `h` or `d`, 1 to 20 of them, each at most 7 days.
fn retry_schedule(text: &str) -> Result<Vec<Duration>, ConfigError> {
    let invalid = |problem: String| ConfigError {
        variable: "TASKLIGHT_WEBHOOK_RETRY_SCHEDULE",
        problem,
    };
    let waits: Vec<Duration> = text
        .split(',')
        .map(str::trim)
        .map(|item| {
            parse_duration(item).ok_or_else(|| {
                invalid(format!(
                    "`{item}` is not a duration such as 500ms, 5s, 5m, 2h or 1d"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if waits.is_empty() || waits.len() > 20 {
        return Err(invalid(format!(
            "must list 1 to 20 waits, got {}",
            waits.len()
        )));
    }
    if let Some(long) = waits.iter().find(|w| **w > Duration::from_secs(7 * 86_400)) {
        return Err(invalid(format!(
            "a wait may be at most 7 days, got {long:?}"
        )));
    }
    Ok(waits)
}

fn parse_duration(item: &str) -> Option<Duration> {
    let split = item.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = item.split_at(split);
    let number: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(millis).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_ends_about_a_day_after_the_first_attempt() {
        let waits = retry_schedule(DEFAULT_RETRY_SCHEDULE).unwrap();
        assert_eq!(waits.len(), 7);
        let total: Duration = waits.iter().sum();
        assert_eq!(
            total,
            Duration::from_secs(5 + 300 + 1_800 + 7_200 + 18_000 + 36_000 + 36_000)
        );
        assert!((total.as_secs_f64() / 3_600.0 - 27.58).abs() < 0.01);
    }

    #[test]
    fn schedules_name_their_bad_item() {
        assert_eq!(
            retry_schedule("100ms, 1s,2m").unwrap()[0],
            Duration::from_millis(100)
        );
        for bad in ["", "5", "5x", "0s", "1s,,2s", "8d"] {
            let err = retry_schedule(bad).unwrap_err();
            assert_eq!(err.variable, "TASKLIGHT_WEBHOOK_RETRY_SCHEDULE", "{bad}");
        }
    }
}
