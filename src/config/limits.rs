//! Rate-limit quotas: `TASKLIGHT_RATE_LIMIT_*`.

use std::time::Duration;

use super::ConfigError;

/// One quota: `limit` requests per `window`, of which up to `burst` may arrive at once.
///
/// Written `LIMIT/WINDOW` with an optional `,burst=N`: `1200/60s`, `10/1m,burst=5`. The window
/// takes `s`, `m` or `h`; the burst defaults to a tenth of the limit (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// Requests that may arrive at once on top of the steady rate.
    pub burst: u32,
}

impl Quota {
    /// A quota of `limit` per `window_secs`, with `burst`.
    pub const fn new(limit: u32, window_secs: u64, burst: u32) -> Self {
        Self {
            limit,
            window: Duration::from_secs(window_secs),
            burst,
        }
    }

    /// The steady spacing between requests (the GCRA emission interval).
    pub fn interval(&self) -> Duration {
        self.window / self.limit
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}s,burst={}",
            self.limit,
            self.window.as_secs(),
            self.burst
        )
    }
}

fn parse_quota(text: &str) -> Result<Quota, String> {
    let usage = "write LIMIT/WINDOW[,burst=N], such as `1200/60s` or `10/1m,burst=5`";
    let (rate, burst) = match text.split_once(',') {
        Some((rate, burst)) => (rate.trim(), Some(burst.trim())),
        None => (text.trim(), None),
    };
    let (limit, window) = rate.split_once('/').ok_or_else(|| usage.to_owned())?;
    let limit: u32 = match limit.trim().parse() {
        Ok(n) if (1..=10_000_000).contains(&n) => n,
        _ => return Err(format!("the limit must be 1 to 10000000; {usage}")),
    };
    let window = window.trim();
    let (number, unit) = window.split_at(window.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("the window needs a unit (s, m or h); {usage}")),
    };
    let window_secs = match number.parse::<u64>() {
        Ok(n) if n >= 1 && n * scale <= 86_400 => n * scale,
        _ => return Err(format!("the window must be 1 s to 24 h; {usage}")),
    };
    let burst = match burst {
        None => (limit / 10).max(1),
        Some(burst) => match burst
            .strip_prefix("burst=")
            .and_then(|n| n.trim().parse::<u32>().ok())
        {
            Some(n) if (1..=10_000_000).contains(&n) => n,
            _ => {
                return Err(format!(
                    "the burst must be `burst=N` with N from 1; {usage}"
                ));
            }
        },
    };
    Ok(Quota::new(limit, window_secs, burst))
}

/// Every rate-limit policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Authenticated requests, per user (`TASKLIGHT_RATE_LIMIT_USER`, `1200/60s,burst=100`).
    pub user: Quota,
    /// Anonymous requests, per client address (`TASKLIGHT_RATE_LIMIT_IP`, `300/60s,burst=50`).
    pub ip: Quota,
    /// Login, register and refresh, per client address (`TASKLIGHT_RATE_LIMIT_AUTH_IP`,
    /// `30/60s,burst=10`).
    pub auth_ip: Quota,
    /// Login, register and refresh, per account (`TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT`,
    /// `10/60s,burst=5`).
    pub auth_account: Quota,
    /// The share of each quota an instance enforces on its own while Redis is unreachable
    /// (`TASKLIGHT_RATE_LIMIT_LOCAL_SHARE`, 0.5; set it to 1 / the number of instances).
    pub local_share: f64,
}

impl RateLimits {
    pub(super) fn from_lookup(
        get: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let quota = |variable: &'static str, default: Quota| match get(variable) {
            None => Ok(default),
            Some(text) => parse_quota(&text).map_err(|problem| ConfigError { variable, problem }),
        };
        let local_share = match get("TASKLIGHT_RATE_LIMIT_LOCAL_SHARE") {
            None => 0.5,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(share) if share > 0.0 && share <= 1.0 => share,
                _ => {
                    return Err(ConfigError {
                        variable: "TASKLIGHT_RATE_LIMIT_LOCAL_SHARE",
                        problem: format!("must be a fraction above 0 and at most 1, got `{text}`"),
                    });
                }
            },
        };
        Ok(Self {
            user: quota("TASKLIGHT_RATE_LIMIT_USER", Quota::new(1200, 60, 100))?,
            ip: quota("TASKLIGHT_RATE_LIMIT_IP", Quota::new(300, 60, 50))?,
            auth_ip: quota("TASKLIGHT_RATE_LIMIT_AUTH_IP", Quota::new(30, 60, 10))?,
            auth_account: quota("TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT", Quota::new(10, 60, 5))?,
            local_share,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_with_and_without_a_burst() {
        assert_eq!(parse_quota("1200/60s"), Ok(Quota::new(1200, 60, 120)));
        assert_eq!(parse_quota("10/1m,burst=5"), Ok(Quota::new(10, 60, 5)));
        assert_eq!(parse_quota(" 5/2h , burst=1 "), Ok(Quota::new(5, 7200, 1)));
        assert_eq!(parse_quota("3/1s"), Ok(Quota::new(3, 1, 1)));
        assert_eq!(Quota::new(10, 60, 5).interval(), Duration::from_secs(6));
    }

    #[test]
    fn bad_quotas_say_what_is_accepted() {
        for bad in [
            "",
            "10",
            "0/60s",
            "10/60",
            "10/0s",
            "10/2d",
            "10/25h",
            "10/60s,5",
            "10/60s,burst=0",
        ] {
            let err = parse_quota(bad).unwrap_err();
            assert!(err.contains("LIMIT/WINDOW"), "{bad}: {err}");
        }
    }
}
