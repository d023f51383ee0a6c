//! Configuration of the outbox and the live event streams.

use std::time::Duration;

use super::ConfigError;
use super::parse::bounded;

/// How events are kept and streamed.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// How long the outbox keeps an event (`TASKLIGHT_EVENT_RETENTION_SECS`, default 7 days):
    /// a stream can resume from `Last-Event-ID` within it.
    pub retention: Duration,
    /// How often an instance looks for new events when nothing told it of any
    /// (`TASKLIGHT_EVENT_POLL_MS`, default 1000): the bound on fan-out latency when Redis
    /// pub/sub is down or absent and the event was written by another instance.
    pub poll_interval: Duration,
    /// Interval of the comment lines that keep an idle stream open through proxies
    /// (`TASKLIGHT_SSE_HEARTBEAT_SECS`, default 15).
    pub heartbeat: Duration,
    /// Streams one user may hold open at once, across the cluster when Redis is configured
    /// (`TASKLIGHT_SSE_MAX_STREAMS_PER_USER`, default 5).
    pub max_streams_per_user: u32,
    /// How long a stream ticket can be used (`TASKLIGHT_SSE_TICKET_TTL_SECS`, default 60).
    pub ticket_ttl: Duration,
}

impl EventsConfig {
    pub(super) fn from_lookup(
        get: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        Ok(Self {
            retention: Duration::from_secs(bounded(
                "TASKLIGHT_EVENT_RETENTION_SECS",
                var("TASKLIGHT_EVENT_RETENTION_SECS"),
                7 * 86_400,
                3_600..=366 * 86_400,
            )?),
            poll_interval: Duration::from_millis(bounded(
                "TASKLIGHT_EVENT_POLL_MS",
                var("TASKLIGHT_EVENT_POLL_MS"),
                1_000,
                10..=60_000,
            )?),
            heartbeat: Duration::from_secs(bounded(
                "TASKLIGHT_SSE_HEARTBEAT_SECS",
                var("TASKLIGHT_SSE_HEARTBEAT_SECS"),
                15,
                1..=300,
            )?),
            max_streams_per_user: bounded(
                "TASKLIGHT_SSE_MAX_STREAMS_PER_USER",
                var("TASKLIGHT_SSE_MAX_STREAMS_PER_USER"),
                5,
                1..=1_000,
            )?,
            ticket_ttl: Duration::from_secs(bounded(
                "TASKLIGHT_SSE_TICKET_TTL_SECS",
                var("TASKLIGHT_SSE_TICKET_TTL_SECS"),
                60,
                5..=600,
            )?),
        })
    }
}
