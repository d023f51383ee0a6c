//! The rate-limit middleware, inside the observing one: every API route is limited per user
//! (valid bearer token) or per client address; login, register and refresh per address under
//! their stricter policy. Limited responses carry `RateLimit-Policy` and `RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers-11); a refusal is a 429 problem with `Retry-After`.

use std::sync::Arc;

use poem::http::{HeaderValue, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use super::{Policy, RateLimiter};
use crate::auth::tokens::{TokenKeys, VerifiedToken};
use crate::http::problem::too_many_requests;
use crate::telemetry::context;

/// The routes with the stricter per-address policy (and a per-account one in their handlers,
/// except verify-email, whose token is the only thing that could be guessed).
const AUTH_ROUTES: [&str; 5] = [
    "/api/v1/auth/login",
    "/api/v1/auth/register",
    "/api/v1/auth/refresh",
    "/api/v1/auth/verify-email",
    "/api/v1/auth/resend-verification",
];

/// Which policy a route falls under: none for health, the documents and Swagger UI.
fn classify(route: &str) -> Option<RouteClass> {
    if AUTH_ROUTES.contains(&route) {
        Some(RouteClass::Credentials)
    } else if route == crate::telemetry::routes::UNMATCHED
        || (route.starts_with("/api/v1/") && !route.starts_with("/api/v1/openapi."))
    {
        Some(RouteClass::Api)
    } else {
        None
    }
}

/// The routes that are limited, by the policy they fall under.
#[derive(Clone, Copy)]
enum RouteClass {
    /// Login, register and refresh: per address, under the stricter policy.
    Credentials,
    /// Every other API route: per user with a valid token, else per address.
    Api,
}

/// See the module documentation.
pub struct RateLimit {
    limiter: Arc<RateLimiter>,
    tokens: Arc<TokenKeys>,
}

impl RateLimit {
    /// The middleware for one app: `tokens` tell which requests are authenticated.
    pub fn new(limiter: Arc<RateLimiter>, tokens: Arc<TokenKeys>) -> Self {
        Self { limiter, tokens }
    }
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RateLimitEndpoint {
            ep,
            limiter: self.limiter.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

/// See [`RateLimit`].
pub struct RateLimitEndpoint<E> {
    ep: E,
    limiter: Arc<RateLimiter>,
    tokens: Arc<TokenKeys>,
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let route = context::with(|c| c.route).unwrap_or(crate::telemetry::routes::UNMATCHED);
        let Some(class) = classify(route) else {
            return self.ep.call(req).await.map(IntoResponse::into_response);
        };
        let client = context::with(|c| c.client_ip)
            .flatten()
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let (policy, key) = match class {
            RouteClass::Credentials => (Policy::AuthIp, client),
            RouteClass::Api => match verified_bearer(&self.tokens, &req) {
                Some(verified) => {
                    let user = verified.claims.sub.to_string();
                    req.extensions_mut().insert(verified);
                    (Policy::User, user)
                }
                None => (Policy::Ip, client),
            },
        };
        let decision = self.limiter.check(policy, &key).await;
        let mut response = if decision.allowed {
            match self.ep.call(req).await {
                Ok(output) => output.into_response(),
                Err(err) => err.into_response(),
            }
        } else {
            too_many_requests(&decision)
        };
        let mut policy_field = decision.policy_item();
        let mut limit_field = decision.limit_item();
        if let Some(account) = context::with(|c| c.account_rate_limit.get().cloned()).flatten() {
            policy_field = format!("{policy_field}, {}", account.policy);
            limit_field = format!("{limit_field}, {}", account.limit);
        }
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&policy_field) {
            headers.insert("ratelimit-policy", value);
        }
        if let Ok(value) = HeaderValue::from_str(&limit_field) {
            headers.insert("ratelimit", value);
        }
        Ok(response)
    }
}

/// A valid access token, if the request has one (revocation is checked later, by the
/// operation, which reuses these verified claims).
fn verified_bearer(tokens: &TokenKeys, req: &Request) -> Option<VerifiedToken> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    let claims = tokens.verify(token).ok()?;
    Some(VerifiedToken {
        token: token.to_owned(),
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_under_the_expected_policies() {
        assert!(matches!(
            classify("/api/v1/auth/login"),
            Some(RouteClass::Credentials)
        ));
        assert!(matches!(
            classify("/api/v1/auth/refresh"),
            Some(RouteClass::Credentials)
        ));
        assert!(matches!(
            classify("/api/v1/auth/logout"),
            Some(RouteClass::Api)
        ));
        assert!(matches!(
            classify("/api/v1/tasks/{task_id}"),
            Some(RouteClass::Api)
        ));
        assert!(matches!(classify("unmatched"), Some(RouteClass::Api)));
        assert!(classify("/health/ready").is_none());
        assert!(classify("/api/v1/openapi.json").is_none());
        assert!(classify("/docs").is_none());
    }
}
