//! The rate-limit middleware, inside the observing one: every API route is limited per user
//! (valid bearer token) or per client address; login, register and refresh per address under
//! their stricter policy. Limited responses carry `RateLimit-Policy` and `RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers-11); a refusal is a 429 problem with `Retry-After`.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use super::{Decision, Policy};
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::http::auth::VerifiedToken;
use crate::http::problem::Problem;
use crate::telemetry::context;

/// The routes with the stricter per-address policy (and a per-account one in their handlers).
const AUTH_ROUTES: [&str; 3] = [
    "/api/v1/auth/login",
    "/api/v1/auth/register",
    "/api/v1/auth/refresh",
];

/// Which policy a route falls under: none for health, the documents and Swagger UI.
fn classify(route: &str) -> Option<Kind> {
    if AUTH_ROUTES.contains(&route) {
        Some(Kind::Auth)
    } else if route == crate::telemetry::routes::UNMATCHED
        || (route.starts_with("/api/v1/") && !route.starts_with("/api/v1/openapi."))
    {
        Some(Kind::General)
    } else {
        None
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Auth,
    General,
}

/// See the module documentation.
pub struct RateLimit {
    state: AppState,
}

impl RateLimit {
    /// The middleware for one app.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RateLimitEndpoint {
            ep,
            state: self.state.clone(),
        }
    }
}

/// See [`RateLimit`].
pub struct RateLimitEndpoint<E> {
    ep: E,
    state: AppState,
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let route = context::with(|c| c.route).unwrap_or(crate::telemetry::routes::UNMATCHED);
        let Some(kind) = classify(route) else {
            return self.ep.call(req).await.map(IntoResponse::into_response);
        };
        let client = context::with(|c| c.client_ip)
            .flatten()
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let (policy, key) = match kind {
            Kind::Auth => (Policy::AuthIp, client),
            Kind::General => match verified_bearer(&self.state, &req) {
                Some(verified) => {
                    let user = verified.claims.sub.to_string();
                    req.extensions_mut().insert(verified);
                    (Policy::User, user)
                }
                None => (Policy::Ip, client),
            },
        };
        let decision = self.state.rate_limiter.check(policy, &key).await;
        let mut response = if decision.allowed {
            match self.ep.call(req).await {
                Ok(output) => output.into_response(),
                Err(err) => err.into_response(),
            }
        } else {
            too_many_requests(&decision)
        };
        let account = context::with(|c| c.account_limit.get().copied()).flatten();
        let decisions: Vec<&Decision> =
            std::iter::once(&decision).chain(account.as_ref()).collect();
        let join = |item: fn(&Decision) -> String| {
            decisions
                .iter()
                .map(|d| item(d))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&join(Decision::policy_item)) {
            headers.insert("ratelimit-policy", value);
        }
        if let Ok(value) = HeaderValue::from_str(&join(Decision::limit_item)) {
            headers.insert("ratelimit", value);
        }
        Ok(response)
    }
}

/// A valid access token, if the request has one (revocation is checked later, by the
/// operation, which reuses these verified claims).
fn verified_bearer(state: &AppState, req: &Request) -> Option<VerifiedToken> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    let claims = state.tokens.verify(token).ok()?;
    Some(VerifiedToken {
        token: token.to_owned(),
        claims,
    })
}

/// The 429 problem for a refused request.
pub fn too_many_requests(decision: &Decision) -> Response {
    let retry = decision.retry_after_secs();
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!(
            "rate limit `{}` exceeded ({} requests per {} s); retry after {retry} s",
            decision.policy.name(),
            decision.quota.limit,
            decision.quota.window.as_secs()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    response
}

/// Counts a login, registration or refresh against the account's policy (`account`: an email or
/// user id). The decision joins the response's rate-limit headers; a refusal is a 429.
pub async fn check_account(state: &AppState, account: &str) -> AppResult<()> {
    let decision = state
        .rate_limiter
        .check(Policy::AuthAccount, &super::account_key(account))
        .await;
    context::with(|c| c.account_limit.set(decision).ok());
    if decision.allowed {
        Ok(())
    } else {
        Err(AppError::RateLimited(Box::new(decision)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_under_the_expected_policies() {
        assert!(matches!(classify("/api/v1/auth/login"), Some(Kind::Auth)));
        assert!(matches!(classify("/api/v1/auth/refresh"), Some(Kind::Auth)));
        assert!(matches!(
            classify("/api/v1/auth/logout"),
            Some(Kind::General)
        ));
        assert!(matches!(
            classify("/api/v1/tasks/{task_id}"),
            Some(Kind::General)
        ));
        assert!(matches!(classify("unmatched"), Some(Kind::General)));
        assert!(classify("/health/ready").is_none());
        assert!(classify("/api/v1/openapi.json").is_none());
        assert!(classify("/docs").is_none());
    }
}
