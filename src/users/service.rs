//! User rules: profile changes (a password change ends every session), the admin's role and
//! disabled changes (audited; disabling ends every session), and `create-admin`.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::audit::model::Change;
use crate::auth::{Principal, password};
use crate::cache::keys;
use crate::db::StoreError;
use crate::domain::DomainContext;
use crate::error::{AppError, AppResult};
use crate::paging::Paging;
use crate::users::model::{DISPLAY_NAME_MAX, Role, User, parse_email};
use crate::users::store::{UserFilter, UserRecord};
use crate::validate::FieldChecks;
use crate::verification::service::{self as verification, Verifier};

/// Changes to the caller's own profile (already validated); `None` leaves a field alone.
pub struct ProfileChanges {
    /// Trimmed, 1 to 100 characters.
    pub display_name: Option<String>,
    /// Trimmed and lower-cased.
    pub email: Option<String>,
    /// Needed for a new email or password.
    pub current_password: Option<String>,
    /// 12 to 128 characters; ends every session of the user.
    pub new_password: Option<String>,
}

/// Maps a unique violation on insert or update of a user to a clear 409.
pub fn email_taken(err: StoreError) -> AppError {
    match err {
        StoreError::Conflict(_) => {
            AppError::Conflict("an account with this email already exists".into())
        }
        other => other.into(),
    }
}

/// A user from the cache (`user:<id>`), loaded from the database on a miss. Every change to a
/// user's profile, role or status invalidates it on every instance.
pub async fn cached_user(ctx: &DomainContext, id: Uuid) -> AppResult<Option<User>> {
    ctx.cache
        .get_or_load("user", keys::user(id), || async {
            Ok(ctx.read().await?.user_by_id(id).await?.map(User::from))
        })
        .await
}

/// The caller's profile, from the cache entry the bearer check has just read: no database read
/// while it is valid.
pub async fn me(ctx: &DomainContext, principal: &Principal) -> AppResult<User> {
    cached_user(ctx, principal.user_id)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// Updates the caller's profile. Email and password changes need the current password; a
/// password change revokes every session of the user, this one included. A new email is
/// unverified until the link mailed to it (after the commit) is used.
pub async fn update_me(
    ctx: &DomainContext,
    verifier: &Verifier,
    principal: &Principal,
    changes: ProfileChanges,
) -> AppResult<User> {
    let mut user = ctx
        .read()
        .await?
        .user_by_id(principal.user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    if changes.email.is_some() || changes.new_password.is_some() {
        let Some(current) = changes.current_password else {
            return Err(AppError::field(
                "current_password",
                "is required to change the email or password",
            ));
        };
        if !password::verify(current, Some(user.password_hash.clone())).await? {
            return Err(AppError::field("current_password", "is incorrect"));
        }
    }
    let mut summary = Map::new();
    if let Some(name) = changes.display_name {
        summary.insert("display_name".into(), json!(name));
        user.display_name = name;
    }
    let mut new_email = None;
    if let Some(email) = changes.email {
        summary.insert("email".into(), json!(email));
        if email != user.email {
            user.email_verified_at = None;
            new_email = Some(email.clone());
        }
        user.email = email;
    }
    let password_changed = changes.new_password.is_some();
    if let Some(new_password) = changes.new_password {
        user.password_hash = password::hash(new_password).await?;
        summary.insert("password".into(), json!("changed"));
    }
    if summary.is_empty() {
        return Ok(user.into());
    }
    user.updated_at = crate::db::now();
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    work.update_profile(&user).await.map_err(email_taken)?;
    work.invalidate([keys::user(user.id)]);
    if password_changed {
        let revoked = work
            .revoke_user_sessions(user.id, "password change", user.updated_at)
            .await?;
        work.invalidate(revoked.into_iter().map(keys::session));
    }
    let mail = match &new_email {
        Some(email) => verification::issue(verifier, &mut work, user.id, email).await?,
        None => None,
    };
    work.record(Change {
        action: "user.updated",
        entity_type: "user",
        entity_id: user.id,
        project_id: None,
        summary: Value::Object(summary),
        resource: json!({ "id": user.id }),
    })
    .await?;
    work.commit().await?;
    if let Some(mail) = mail {
        mail.send(verifier);
    }
    Ok(user.into())
}

/// Refuses non-admins.
pub fn require_admin(principal: &Principal) -> AppResult<()> {
    if principal.role == Role::Admin {
        Ok(())
    } else {
        Err(AppError::Forbidden("this operation is for administrators"))
    }
}

/// One page of users in creation order.
pub async fn list(
    ctx: &DomainContext,
    principal: &Principal,
    filter: UserFilter,
    cursor: Option<&str>,
    limit: u32,
) -> AppResult<(Vec<User>, Option<String>)> {
    require_admin(principal)?;
    let paging = Paging::<Uuid>::new(
        &[
            "users",
            filter.text.as_deref().unwrap_or(""),
            filter.role.map_or("", Role::as_str),
            &format!("{:?}", filter.disabled),
        ],
        cursor,
        limit,
    )?;
    let rows = ctx
        .read()
        .await?
        .list_users(&filter, paging.after, paging.fetch())
        .await?;
    Ok(paging.page(rows, |u| u.id))
}

/// An admin changes a user's role or disabled status; disabling ends the user's sessions.
pub async fn admin_update(
    ctx: &DomainContext,
    principal: &Principal,
    user_id: Uuid,
    role: Option<Role>,
    disabled: Option<bool>,
) -> AppResult<User> {
    require_admin(principal)?;
    if user_id == principal.user_id {
        return Err(AppError::Conflict(
            "administrators cannot change their own role or status; ask another administrator"
                .into(),
        ));
    }
    let mut work = ctx.begin(Some(principal.user_id)).await?;
    let mut user = work
        .user_by_id(user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let now = crate::db::now();
    let mut changes = Vec::new();
    if let Some(role) = role.filter(|r| r.as_str() != user.role) {
        user.role = role.as_str().to_owned();
        changes.push(("user.role_changed", json!({ "role": role.as_str() })));
    }
    if let Some(disabled) = disabled.filter(|d| *d != user.disabled) {
        user.disabled = disabled;
        let action = if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        changes.push((action, json!({ "disabled": disabled })));
        if disabled {
            let revoked = work
                .revoke_user_sessions(user.id, "disabled by an administrator", now)
                .await?;
            work.invalidate(revoked.into_iter().map(keys::session));
        }
    }
    if changes.is_empty() {
        return Ok(user.into());
    }
    user.updated_at = now;
    work.update_status(&user).await?;
    work.invalidate([keys::user(user_id)]);
    for (action, summary) in changes {
        work.record(Change {
            action,
            entity_type: "user",
            entity_id: user.id,
            project_id: None,
            summary,
            resource: json!({ "id": user.id }),
        })
        .await?;
    }
    work.commit().await?;
    Ok(user.into())
}

/// `tasklight create-admin`: creates an administrator, or promotes (and re-enables) an existing
/// user, whose password is then left unchanged; either way the address counts as verified (the
/// operator vouches for it). Returns what was done, for the terminal.
pub async fn create_or_promote_admin(
    ctx: &DomainContext,
    email: &str,
    display_name: &str,
    new_password: &str,
) -> AppResult<String> {
    let email = parse_email("email", email).map_err(|e| AppError::Validation(vec![e]))?;
    let mut work = ctx.begin(None).await?;
    let (user_id, message) = match work.user_by_email(&email).await? {
        Some(mut user) => {
            user.role = Role::Admin.as_str().to_owned();
            user.disabled = false;
            user.updated_at = crate::db::now();
            work.update_status(&user).await?;
            if user.email_verified_at.is_none() {
                work.set_email_verified(user.id, &user.email, user.updated_at)
                    .await?;
            }
            (user.id, format!("promoted {email} to administrator"))
        }
        None => {
            let mut checks = FieldChecks::default();
            password::check_new(&mut checks, "password", new_password);
            checks.line("name", display_name, 1, DISPLAY_NAME_MAX);
            let errors = checks.finish();
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            let now = crate::db::now();
            let user = UserRecord {
                id: Uuid::now_v7(),
                email: email.clone(),
                display_name: display_name.trim().to_owned(),
                password_hash: password::hash(new_password.to_owned()).await?,
                role: Role::Admin.as_str().to_owned(),
                disabled: false,
                created_at: now,
                updated_at: now,
                email_verified_at: Some(now),
            };
            work.insert_user(&user).await.map_err(email_taken)?;
            (user.id, format!("created administrator {email}"))
        }
    };
    work.record(Change {
        action: "user.role_changed",
        entity_type: "user",
        entity_id: user_id,
        project_id: None,
        summary: json!({ "role": "admin", "via": "create-admin" }),
        resource: json!({ "id": user_id }),
    })
    .await?;
    work.invalidate([keys::user(user_id)]);
    work.commit().await?;
    Ok(message)
}
