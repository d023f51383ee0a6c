//! Liveness (the process answers) and readiness (the database answers, the instance is not
//! draining; Redis is reported but does not decide).
//!
//! Redis being down does not make an instance unready: every instance shares the one Redis, so
//! failing readiness on it would take them all out of the balancer at once, while each keeps
//! serving correctly without it (cache bypassed, rate limits in-process).

use std::time::{Duration, Instant};

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::http::tags::Tag;
use crate::state::AppState;

/// Liveness.
#[derive(Debug, Object)]
pub struct Live {
    /// Always `ok`.
    #[oai(validator(max_length = 2, pattern = "^ok$"))]
    pub status: String,
}

/// One dependency check.
#[derive(Debug, Object)]
pub struct Check {
    /// `up` or `down`.
    #[oai(validator(max_length = 4, pattern = "^(up|down)$"))]
    pub status: String,
    /// How long the check took, in milliseconds.
    #[oai(validator(minimum(value = "0")))]
    pub latency_ms: f64,
    /// Why the check failed, when it did (at most 500 characters).
    #[oai(skip_serializing_if_is_none, validator(max_length = 500))]
    pub error: Option<String>,
}

/// The read replica, as its last check (every 250 ms) found it.
#[derive(Debug, Object)]
pub struct ReplicaCheck {
    /// `up`; `lagging` (behind by more than `TASKLIGHT_READ_MAX_LAG_MS`) or `down`, when reads
    /// go to the primary instead.
    #[oai(validator(max_length = 7, pattern = "^(up|lagging|down)$"))]
    pub status: String,
    /// How far behind the primary it is, in milliseconds (0: it has replayed everything).
    #[oai(validator(minimum(value = "0")))]
    pub lag_ms: f64,
}

/// The checks behind readiness.
#[derive(Debug, Object)]
#[oai(rename = "Checks")]
pub struct DependencyChecks {
    /// The database (`SELECT 1`); down means not ready.
    pub database: Check,
    /// Redis (`PING`), when configured; down means degraded (in-process fallbacks), still
    /// ready.
    #[oai(skip_serializing_if_is_none)]
    pub redis: Option<Check>,
    /// The read replica (`DATABASE_READ_URL`), when configured; lagging or down means
    /// degraded (reads go to the primary), still ready.
    #[oai(skip_serializing_if_is_none)]
    pub replica: Option<ReplicaCheck>,
}

/// Readiness.
#[derive(Debug, Object)]
pub struct Ready {
    /// `ready`, `degraded` (ready; Redis down, or the read replica lagging or down), `draining`
    /// (shutting down) or `not_ready`.
    #[oai(validator(max_length = 9, pattern = "^(ready|degraded|draining|not_ready)$"))]
    pub status: String,
    /// Whether the instance is shutting down.
    pub draining: bool,
    /// Each dependency's state.
    pub checks: DependencyChecks,
}

/// Liveness answer.
#[derive(ApiResponse)]
pub enum LiveResponse {
    /// The process runs.
    #[oai(status = 200)]
    Live(Json<Live>),
}

/// Readiness answer.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Ready>),
    /// The database does not answer, or the instance is draining; take it out of rotation.
    #[oai(status = 503)]
    NotReady(Json<Ready>),
}

/// How long one dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn readiness(state: &AppState) -> (bool, Ready) {
    let database = async {
        let started = Instant::now();
        let result = match tokio::time::timeout(CHECK_TIMEOUT, state.domain.db.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        check(started, result)
    };
    let redis = async {
        let redis = state.redis.as_ref()?;
        let started = Instant::now();
        Some(check(
            started,
            redis.ping().await.map(drop).map_err(|e| e.to_string()),
        ))
    };
    let (database, redis) = tokio::join!(database, redis);
    let draining = state.drain.is_draining();
    let database_up = database.error.is_none();
    let redis_up = redis.as_ref().is_none_or(|r| r.error.is_none());
    let replica = state.domain.db.replica().map(|replica| {
        let found = replica.state();
        ReplicaCheck {
            status: match (found.up, found.lagging) {
                (false, _) => "down",
                (true, true) => "lagging",
                (true, false) => "up",
            }
            .to_owned(),
            lag_ms: (found.lag.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        }
    });
    let optional_up = redis_up && replica.as_ref().is_none_or(|r| r.status == "up");
    let status = match (draining, database_up, optional_up) {
        (true, _, _) => "draining",
        (false, false, _) => "not_ready",
        (false, true, false) => "degraded",
        (false, true, true) => "ready",
    };
    let body = Ready {
        status: status.to_owned(),
        draining,
        checks: DependencyChecks {
            database,
            redis,
            replica,
        },
    };
    (!draining && database_up, body)
}

fn check(started: Instant, result: Result<(), String>) -> Check {
    Check {
        status: if result.is_ok() { "up" } else { "down" }.to_owned(),
        latency_ms: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
        error: result.err().map(|e| e.chars().take(500).collect()),
    }
}

fn live() -> Live {
    Live {
        status: "ok".to_owned(),
    }
}

/// Liveness for the admin listener.
pub fn live_response() -> poem::Response {
    use poem::IntoResponse;
    poem::web::Json(serde_json::json!({ "status": live().status })).into_response()
}

/// Readiness for the admin listener.
pub async fn ready_response(state: &AppState) -> poem::Response {
    use poem::IntoResponse;
    match readiness(state).await {
        (true, body) => Json(body).into_response(),
        (false, body) => Json(body)
            .with_status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
            .into_response(),
    }
}

/// Health endpoints.
pub struct HealthApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi(prefix_path = "/health", tag = "Tag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// Answers 200 while the process runs.
    #[oai(path = "/live", method = "get", operation_id = "live")]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Live(Json(live()))
    }

    /// Readiness
    ///
    /// Checks the database and Redis, each with its latency. Answers 503 when the database does
    /// not respond or the instance is draining (shutting down); Redis being down only makes the
    /// status `degraded`.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self) -> ReadyResponse {
        let (up, body) = readiness(&self.state).await;
        if up {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}
