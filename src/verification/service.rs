//! Email-verification rules: a link is issued in the same transaction as the registration or
//! email change that needs it and mailed after that commits; it works once, before it expires,
//! and only for the address it was sent to. Issuing a new link retires the older ones.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::audit::model::Change;
use crate::auth::Principal;
use crate::auth::tokens;
use crate::cache::keys;
use crate::domain::{DomainContext, UnitOfWork};
use crate::error::{AppError, AppResult};
use crate::mail::Mailer;
use crate::ratelimit::RateLimiter;
use crate::users::model::parse_email;

/// What issuing and mailing links needs: the mailer and how long a link works.
#[derive(Clone)]
pub struct Verifier {
    /// Sends the link, or nothing without `SMTP_URL`.
    pub mailer: Arc<Mailer>,
    /// How long a link works (`TASKLIGHT_EMAIL_VERIFICATION_TTL_SECS`).
    pub ttl: Duration,
}

/// A link issued in a write that has not committed yet; [`PendingMail::send`] it after the
/// commit. Deliberately not `Debug`: it holds the token.
#[must_use = "send it once the write has committed"]
pub struct PendingMail {
    user_id: Uuid,
    email: String,
    token: String,
}

impl PendingMail {
    /// Mails the link on a task of its own (see [`Mailer::send_verification`]).
    pub fn send(self, verifier: &Verifier) {
        verifier
            .mailer
            .send_verification(self.user_id, self.email, self.token);
    }
}

const INVALID_TOKEN: &str = "is invalid, expired or already used; ask for a new link with \
                             POST /api/v1/auth/resend-verification";

/// Issues a link for `email` inside `work`, retiring the user's unused ones. Without SMTP
/// nothing is issued (there is no way to deliver it): `None`.
pub async fn issue(
    verifier: &Verifier,
    work: &mut UnitOfWork<'_>,
    user_id: Uuid,
    email: &str,
) -> AppResult<Option<PendingMail>> {
    if !verifier.mailer.enabled() {
        return Ok(None);
    }
    let (token, hash) = tokens::new_single_use_token();
    let now = crate::db::now();
    let ttl = chrono::Duration::from_std(verifier.ttl).unwrap_or(chrono::Duration::days(1));
    work.delete_unused_verification_tokens(user_id).await?;
    work.insert_verification_token(&hash, user_id, email, now, now + ttl)
        .await?;
    Ok(Some(PendingMail {
        user_id,
        email: email.to_owned(),
        token,
    }))
}

/// Takes a link's token: marks its address verified, once. A wrong, used or expired token, or
/// one sent to an address the account no longer has, is a 400 naming `token`.
pub async fn verify(ctx: &DomainContext, token: &str) -> AppResult<()> {
    let invalid = || AppError::field("token", INVALID_TOKEN);
    let hash = tokens::hash_single_use_token(token);
    let found = ctx
        .read()
        .await?
        .verification_token(&hash)
        .await?
        .ok_or_else(invalid)?;
    let now = crate::db::now();
    let mut work = ctx.begin(Some(found.user_id)).await?;
    let record = work.verification_token(&hash).await?.ok_or_else(invalid)?;
    if record.used_at.is_some() || record.expires_at <= now {
        return Err(invalid());
    }
    if !work.mark_verification_token_used(&hash, now).await?
        || !work
            .set_email_verified(record.user_id, &record.email, now)
            .await?
    {
        return Err(invalid());
    }
    work.record(Change {
        action: "user.email_verified",
        entity_type: "user",
        entity_id: record.user_id,
        project_id: None,
        summary: json!({ "email": record.email, "via": "link" }),
        resource: json!({ "id": record.user_id }),
    })
    .await?;
    work.invalidate([keys::user(record.user_id)]);
    work.commit().await
}

/// Mails a new link to the caller's address, unless it is verified already or no SMTP server
/// is configured; the answer is the same in every case. Limited per account like logins.
pub async fn resend(
    ctx: &DomainContext,
    verifier: &Verifier,
    limiter: &RateLimiter,
    principal: &Principal,
) -> AppResult<()> {
    limiter
        .check_account(&format!("resend-verification:{}", principal.user_id))
        .await?;
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let user = work
        .user_by_id(principal.user_id)
        .await?
        .ok_or(AppError::Unauthorized(
            "the access token is invalid or expired",
        ))?;
    if user.email_verified_at.is_some() {
        return Ok(());
    }
    let Some(mail) = issue(verifier, &mut work, user.id, &user.email).await? else {
        return Ok(());
    };
    work.record(Change {
        action: "user.verification_requested",
        entity_type: "user",
        entity_id: user.id,
        project_id: None,
        summary: json!({}),
        resource: json!({ "id": user.id }),
    })
    .await?;
    work.commit().await?;
    mail.send(verifier);
    Ok(())
}

/// `tasklight verify-email`: an operator vouches for an address (deployments without SMTP).
/// Returns what was done, for the terminal.
pub async fn mark_verified(ctx: &DomainContext, email: &str) -> AppResult<String> {
    let email = parse_email("email", email).map_err(|e| AppError::Validation(vec![e]))?;
    let mut work = ctx.begin(None).await?;
    let user = work
        .user_by_email(&email)
        .await?
        .ok_or(AppError::NotFound("account with this email"))?;
    if user.email_verified_at.is_some() {
        return Ok(format!("{email} was already verified"));
    }
    work.set_email_verified(user.id, &user.email, crate::db::now())
        .await?;
    work.record(Change {
        action: "user.email_verified",
        entity_type: "user",
        entity_id: user.id,
        project_id: None,
        summary: json!({ "email": user.email, "via": "verify-email" }),
        resource: json!({ "id": user.id }),
    })
    .await?;
    work.invalidate([keys::user(user.id)]);
    work.commit().await?;
    Ok(format!("marked {email} verified"))
}
