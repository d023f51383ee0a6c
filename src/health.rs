//! Liveness (the process answers) and readiness (the database answers).

use std::time::Instant;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::app::AppState;
use crate::openapi::Tag;

/// Liveness.
#[derive(Debug, Object)]
pub struct Live {
    /// Always `ok`.
    pub status: String,
}

/// One dependency check.
#[derive(Debug, Object)]
pub struct Check {
    /// `up` or `down`.
    pub status: String,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
}

/// The checks behind readiness.
#[derive(Debug, Object)]
pub struct Checks {
    /// The database (`SELECT 1`).
    pub database: Check,
}

/// Readiness.
#[derive(Debug, Object)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Each dependency's state.
    pub checks: Checks,
}

/// Readiness answer.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Ready>),
    /// A dependency does not answer; take this instance out of rotation.
    #[oai(status = 503)]
    NotReady(Json<Ready>),
}

async fn readiness(state: &AppState) -> (bool, Ready) {
    let started = Instant::now();
    let up = state.db.ping().await.is_ok();
    let database = Check {
        status: if up { "up" } else { "down" }.to_owned(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    let body = Ready {
        status: if up { "ready" } else { "not_ready" }.to_owned(),
        checks: Checks { database },
    };
    (up, body)
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
    async fn live(&self) -> Json<Live> {
        Json(live())
    }

    /// Readiness
    ///
    /// Checks the database; answers 503 when it does not respond.
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
