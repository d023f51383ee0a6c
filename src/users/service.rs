//! User rules: profile changes (a password change ends every session), the admin's role and
//! disabled changes (audited; disabling ends every session), and `create-admin`.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Change};
use crate::auth::{Principal, password, service::email_taken};
use crate::cache::keys;
use crate::error::{AppError, AppResult};
use crate::http::pagination::Paging;
use crate::users::model::{Role, User, parse_email};
use crate::users::store::{UserFilter, UserRecord};

/// Changes to the caller's own profile (already validated).
pub struct ProfileChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New email (normalised).
    pub email: Option<String>,
    /// The current password, needed for a new email or password.
    pub current_password: Option<String>,
    /// New password.
    pub new_password: Option<String>,
}

/// The caller's profile.
pub async fn me(state: &AppState, principal: &Principal) -> AppResult<User> {
    let user = state.db.conn().await?.user_by_id(principal.user_id).await?;
    Ok(user.ok_or(AppError::NotFound("user"))?.into())
}

/// Updates the caller's profile. Email and password changes need the current password; a
/// password change revokes every session of the user, this one included.
pub async fn update_me(
    state: &AppState,
    principal: &Principal,
    changes: ProfileChanges,
) -> AppResult<User> {
    let mut user = state
        .db
        .conn()
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
    if let Some(email) = changes.email {
        summary.insert("email".into(), json!(email));
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
    let mut tx = state.db.begin().await?;
    tx.update_profile(&user).await.map_err(email_taken)?;
    let mut stale = Vec::new();
    if password_changed {
        let revoked = tx
            .revoke_user_sessions(user.id, "password change", user.updated_at)
            .await?;
        stale.extend(revoked.into_iter().map(keys::session));
    }
    let change = Change {
        action: "user.updated",
        entity_type: "user",
        entity_id: user.id,
        project_id: None,
        summary: Value::Object(summary),
    };
    audit::record(
        &mut *tx,
        &state.config.instance_id,
        Some(principal.user_id),
        change,
    )
    .await?;
    tx.commit().await?;
    state.cache.invalidate(&stale).await;
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
    state: &AppState,
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
            filter.role.unwrap_or(""),
            &format!("{:?}", filter.disabled),
        ],
        cursor,
        limit,
    )?;
    let mut rows = state
        .db
        .conn()
        .await?
        .list_users(&filter, paging.after, paging.fetch())
        .await?;
    let next = paging.finish(&mut rows, |u| u.id);
    Ok((rows.into_iter().map(User::from).collect(), next))
}

/// An admin changes a user's role or disabled status; disabling ends the user's sessions.
pub async fn admin_update(
    state: &AppState,
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
    let mut tx = state.db.begin().await?;
    let mut user = tx
        .user_by_id(user_id)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let now = crate::db::now();
    let mut changes = Vec::new();
    let mut stale = vec![keys::user(user_id)];
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
            let revoked = tx
                .revoke_user_sessions(user.id, "disabled by an administrator", now)
                .await?;
            stale.extend(revoked.into_iter().map(keys::session));
        }
    }
    if changes.is_empty() {
        return Ok(user.into());
    }
    user.updated_at = now;
    tx.update_status(&user).await?;
    for (action, summary) in changes {
        let change = Change {
            action,
            entity_type: "user",
            entity_id: user.id,
            project_id: None,
            summary,
        };
        audit::record(
            &mut *tx,
            &state.config.instance_id,
            Some(principal.user_id),
            change,
        )
        .await?;
    }
    tx.commit().await?;
    state.cache.invalidate(&stale).await;
    Ok(user.into())
}

/// `tasklight create-admin`: creates an administrator, or promotes (and re-enables) an existing
/// user, whose password is then left unchanged. Returns what was done, for the terminal.
pub async fn create_or_promote_admin(
    state: &AppState,
    email: &str,
    display_name: &str,
    new_password: &str,
) -> AppResult<String> {
    let email = parse_email("email", email).map_err(|e| AppError::Validation(vec![e]))?;
    let mut tx = state.db.begin().await?;
    let (user_id, message) = match tx.user_by_email(&email).await? {
        Some(mut user) => {
            user.role = Role::Admin.as_str().to_owned();
            user.disabled = false;
            user.updated_at = crate::db::now();
            tx.update_status(&user).await?;
            (user.id, format!("promoted {email} to administrator"))
        }
        None => {
            let mut checks = crate::http::body::Checks::default();
            crate::auth::api::check_password(&mut checks, "password", new_password);
            checks.line(
                "name",
                display_name,
                1,
                crate::users::model::DISPLAY_NAME_MAX,
            );
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
            };
            tx.insert_user(&user).await.map_err(email_taken)?;
            (user.id, format!("created administrator {email}"))
        }
    };
    let change = Change {
        action: "user.role_changed",
        entity_type: "user",
        entity_id: user_id,
        project_id: None,
        summary: json!({ "role": "admin", "via": "create-admin" }),
    };
    audit::record(&mut *tx, &state.config.instance_id, None, change).await?;
    tx.commit().await?;
    state.cache.invalidate(&[keys::user(user_id)]).await;
    Ok(message)
}
