//! Cluster-wide rate limits: GCRA in Redis (one Lua script on Redis's clock, so every instance
//! draws from one quota), with governor in-process as the fallback while Redis is unreachable,
//! at a configured local share of each quota.
//!
//! Requests are limited per user when they carry a valid access token and per client address
//! otherwise; login, register and refresh have stricter policies per address and per account.
//! Every decision is a count in `tasklight_rate_limit_decisions_total{policy, result}`, and either a span
//! (`rate_limit.check`, when it goes to Redis, and for the per-account decision) or attributes of
//! the server span (an in-process decision, which costs less than a span would).

pub mod middleware;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind};

use crate::config::{Quota, RateLimits};
use crate::redis_client::{self, Redis, RedisError};
use crate::telemetry::context::{self, RateLimitItems};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::span;

/// A rate-limit policy: which quota applies, and what it is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Authenticated requests, per user.
    User,
    /// Anonymous requests, per client address.
    Ip,
    /// Login, register and refresh, per client address.
    AuthIp,
    /// Login, register and refresh, per account.
    AuthAccount,
}

impl Policy {
    const ALL: [Policy; 4] = [Self::User, Self::Ip, Self::AuthIp, Self::AuthAccount];

    /// The name in headers, metrics and spans.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Ip => "ip",
            Self::AuthIp => "auth-ip",
            Self::AuthAccount => "auth-account",
        }
    }

    fn quota(self, limits: &RateLimits) -> Quota {
        match self {
            Self::User => limits.user,
            Self::Ip => limits.ip,
            Self::AuthIp => limits.auth_ip,
            Self::AuthAccount => limits.auth_account,
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// The policy that decided.
    pub policy: Policy,
    /// Its quota.
    pub quota: Quota,
    /// Whether the request may go on.
    pub allowed: bool,
    /// Requests that may still arrive at once.
    pub remaining: u64,
    /// When refused: how long until one more request is allowed.
    pub retry_after: Duration,
    /// How long until the whole burst is available again.
    pub reset: Duration,
}

impl Decision {
    /// This policy's item of the `RateLimit-Policy` field: `"user";q=1200;w=60`.
    pub fn policy_item(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.policy.name(),
            self.quota.limit,
            self.quota.window.as_secs()
        )
    }

    /// This policy's item of the `RateLimit` field: `"user";r=99;t=1`.
    pub fn limit_item(&self) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.policy.name(),
            self.remaining,
            ceil_secs(self.reset)
        )
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_micros().div_ceil(1_000_000) as u64
}

type Local = governor::DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

/// The limiter of one instance.
pub struct RateLimiter {
    limits: RateLimits,
    redis: Option<Arc<Redis>>,
    script: redis::Script,
    /// One governor limiter per policy, in [`Policy::ALL`] order, with its quota.
    local: Vec<(Local, Quota)>,
    metrics: Arc<Metrics>,
    falling_back: AtomicBool,
}

impl RateLimiter {
    /// Limits through `redis` when given (in-process at the local share while it is
    /// unreachable), else in-process at the full quotas.
    pub fn new(limits: RateLimits, redis: Option<Arc<Redis>>, metrics: Arc<Metrics>) -> Arc<Self> {
        let share = if redis.is_some() {
            limits.local_share
        } else {
            1.0
        };
        let local = Policy::ALL
            .iter()
            .map(|policy| {
                let quota = scaled(policy.quota(&limits), share);
                let limiter = governor::RateLimiter::keyed(governor_quota(quota))
                    .with_middleware::<StateInformationMiddleware>();
                (limiter, quota)
            })
            .collect();
        let limiter = Arc::new(Self {
            limits,
            redis,
            script: redis::Script::new(include_str!("gcra.lua")),
            local,
            metrics,
            falling_back: AtomicBool::new(false),
        });
        // Forget idle keys now and then, so the in-process maps stay small.
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                for (local, _) in &limiter.local {
                    local.retain_recent();
                    local.shrink_to_fit();
                }
            }
        });
        limiter
    }

    /// Counts a login, registration or refresh against the account's policy (`account`: an
    /// email or user id). The decision joins the response's rate-limit headers; `Err` holds a
    /// refusal.
    pub async fn check_account(&self, account: &str) -> Result<(), Decision> {
        let decision = self.check(Policy::AuthAccount, &account_key(account)).await;
        context::with(|c| {
            c.account_rate_limit
                .set(RateLimitItems {
                    policy: decision.policy_item(),
                    limit: decision.limit_item(),
                })
                .ok()
        });
        if decision.allowed {
            Ok(())
        } else {
            Err(decision)
        }
    }

    /// Counts one request against `policy` for `key` (a user id, an address, an account hash).
    ///
    /// A decision made in Redis gets a `rate_limit.check` span (it leaves the process); one made
    /// in process (no Redis configured) is recorded on the server span instead, as
    /// `rate_limit.policy`, `rate_limit.result` and `rate_limit.backend`, like the cache's L1
    /// hits: a span of its own would cost more than the decision. A login, registration or
    /// refresh makes a second, per-account decision, which always has its span.
    pub async fn check(&self, policy: Policy, key: &str) -> Decision {
        let own_span = self.redis.is_some() || policy == Policy::AuthAccount;
        let mut span = if own_span {
            span::child(
                "rate_limit.check",
                SpanKind::Internal,
                vec![KeyValue::new("rate_limit.policy", policy.name())],
            )
        } else {
            None
        };
        let (decision, fallback) = match &self.redis {
            Some(redis) => match self.check_redis(redis, policy, key).await {
                Ok(decision) => {
                    self.fallback(false, None);
                    (decision, false)
                }
                Err(err) => {
                    self.fallback(true, Some(&err));
                    (self.check_local(policy, key), true)
                }
            },
            None => (self.check_local(policy, key), false),
        };
        let result = if decision.allowed {
            "allowed"
        } else {
            "limited"
        };
        let backend = if self.redis.is_some() && !fallback {
            "redis"
        } else {
            "local"
        };
        match span.as_mut() {
            Some(span) => {
                span.set_attribute(KeyValue::new("rate_limit.result", result));
                span.set_attribute(KeyValue::new("rate_limit.backend", backend));
            }
            None if !own_span => {
                context::note_rate_limit(context::RateLimitNote {
                    policy: policy.name(),
                    result,
                    backend,
                });
            }
            None => {}
        }
        self.metrics
            .rate_limits
            .decision(policy.name(), decision.allowed, fallback);
        decision
    }

    async fn check_redis(
        &self,
        redis: &Redis,
        policy: Policy,
        key: &str,
    ) -> Result<Decision, RedisError> {
        let quota = policy.quota(&self.limits);
        let interval_us = (quota.interval().as_micros() as u64).max(1);
        let _span = redis_client::command_span("EVALSHA");
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(redis.key(&format!("rl:{}:{key}", policy.name())))
            .arg(interval_us)
            .arg(quota.burst);
        let answer: Vec<i64> = redis
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let [allowed, remaining, retry_us, reset_us] = answer[..] else {
            return Err(RedisError::Redis(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the rate-limit script answered with the wrong shape",
            ))));
        };
        Ok(Decision {
            policy,
            quota,
            allowed: allowed == 1,
            remaining: remaining.max(0) as u64,
            retry_after: Duration::from_micros(retry_us.max(0) as u64),
            reset: Duration::from_micros(reset_us.max(0) as u64),
        })
    }

    fn check_local(&self, policy: Policy, key: &str) -> Decision {
        let index = Policy::ALL.iter().position(|p| *p == policy).unwrap_or(0);
        let (limiter, local_quota) = &self.local[index];
        let quota = policy.quota(&self.limits);
        let interval = local_quota.interval();
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = u64::from(snapshot.remaining_burst_capacity());
                let used = u64::from(local_quota.burst).saturating_sub(remaining);
                Decision {
                    policy,
                    quota,
                    allowed: true,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset: interval * used as u32,
                }
            }
            Err(not_until) => {
                use governor::clock::Clock as _;
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Decision {
                    policy,
                    quota,
                    allowed: false,
                    remaining: 0,
                    retry_after: wait,
                    reset: interval * local_quota.burst,
                }
            }
        }
    }

    /// Logs the switch to and from the in-process fallback once, and sets the gauge.
    fn fallback(&self, active: bool, err: Option<&RedisError>) {
        if self.falling_back.swap(active, Ordering::Relaxed) == active {
            return;
        }
        self.metrics
            .rate_limits
            .fallback_active
            .set(if active { 1.0 } else { 0.0 });
        if active {
            tracing::warn!(
                error = err.map(tracing::field::display),
                local_share = self.limits.local_share,
                "rate limits fall back to in-process limiting at the local share of each quota"
            );
        } else {
            tracing::info!("rate limits are enforced cluster-wide in Redis again");
        }
    }
}

/// `share` of a quota: the same window, fewer requests (at least one).
fn scaled(quota: Quota, share: f64) -> Quota {
    let scale = |n: u32| ((f64::from(n) * share).round() as u32).max(1);
    Quota {
        limit: scale(quota.limit),
        window: quota.window,
        burst: scale(quota.burst),
    }
}

fn governor_quota(quota: Quota) -> governor::Quota {
    let interval = quota.interval().max(Duration::from_nanos(1));
    governor::Quota::with_period(interval)
        .expect("the interval is not zero")
        .allow_burst(NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN))
}

/// The account key of an email or user id: a hash, so Redis keys never hold an address.
pub fn account_key(account: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(account.trim().to_lowercase().as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(quota: Quota) -> Arc<RateLimiter> {
        let limits = RateLimits {
            user: quota,
            ip: quota,
            auth_ip: quota,
            auth_account: quota,
            local_share: 0.5,
        };
        RateLimiter::new(limits, None, Arc::new(Metrics::new("unit")))
    }

    #[tokio::test]
    async fn the_local_limiter_allows_the_burst_then_refuses_with_a_retry_time() {
        let limiter = limiter(Quota::new(60, 60, 3));
        for expected_remaining in [2, 1, 0] {
            let decision = limiter.check(Policy::Ip, "192.0.2.1").await;
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = limiter.check(Policy::Ip, "192.0.2.1").await;
        assert!(!refused.allowed);
        assert!(
            refused.retry_after > Duration::from_millis(500),
            "{refused:?}"
        );
        assert_eq!(refused.retry_after_secs(), 1);
        // Another key has its own quota.
        assert!(limiter.check(Policy::Ip, "192.0.2.2").await.allowed);
    }

    #[test]
    fn header_items_follow_the_draft_syntax() {
        let decision = Decision {
            policy: Policy::AuthAccount,
            quota: Quota::new(10, 60, 5),
            allowed: true,
            remaining: 4,
            retry_after: Duration::ZERO,
            reset: Duration::from_millis(6001),
        };
        assert_eq!(decision.policy_item(), "\"auth-account\";q=10;w=60");
        assert_eq!(decision.limit_item(), "\"auth-account\";r=4;t=7");
    }

    #[test]
    fn the_local_share_scales_limit_and_burst_but_not_below_one() {
        assert_eq!(scaled(Quota::new(100, 60, 10), 0.5), Quota::new(50, 60, 5));
        assert_eq!(scaled(Quota::new(1, 60, 1), 0.25), Quota::new(1, 60, 1));
    }

    #[test]
    fn account_keys_ignore_case_and_hide_the_address() {
        let key = account_key(" Alice@Example.com");
        assert_eq!(key, account_key("alice@example.com"));
        assert!(!key.contains("alice"));
        assert_eq!(key.len(), 32);
    }
}
