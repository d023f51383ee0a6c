//! User storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, StoreResult};
use crate::users::model::Role;

/// A stored user, including the password hash (which never leaves the service).
#[derive(Clone, sqlx::FromRow)]
pub struct UserRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// Lower-case; unique.
    pub email: String,
    /// One line, 1 to 100 characters, shown to other project members.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `user` or `admin`.
    pub role: String,
    /// A disabled user cannot log in, and their sessions are revoked.
    pub disabled: bool,
    /// When they registered.
    pub created_at: DateTime<Utc>,
    /// When their profile, role or status last changed.
    pub updated_at: DateTime<Utc>,
    /// When their current email was verified; `None`: not verified (a new email starts so).
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// Filters of the admin user list.
#[derive(Default)]
pub struct UserFilter {
    /// A substring of the email or display name, matched without regard to case.
    pub text: Option<String>,
    /// Only this role.
    pub role: Option<Role>,
    /// Only disabled (or only enabled) users.
    pub disabled: Option<bool>,
}

/// Storage of users.
#[async_trait]
pub trait UserStore: Send {
    /// Inserts a user (conflict if the email is taken).
    async fn insert_user(&mut self, user: &UserRecord) -> StoreResult<()>;
    /// A user by id.
    async fn user_by_id(&mut self, id: Uuid) -> StoreResult<Option<UserRecord>>;
    /// A user by (lower-case) email.
    async fn user_by_email(&mut self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Writes the profile fields of `user` (email, display name, password hash). Role and status
    /// are left alone, so a profile change cannot undo an administrator's concurrent change.
    async fn update_profile(&mut self, user: &UserRecord) -> StoreResult<()>;
    /// Writes the role and disabled status of `user` (administrators, `create-admin`).
    async fn update_status(&mut self, user: &UserRecord) -> StoreResult<()>;
    /// Marks the user's email verified at `now`, if it is still `email` (compared without
    /// regard to case); false if the user or that email is gone.
    async fn set_email_verified(
        &mut self,
        user_id: Uuid,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Users in creation order after `after`, at most `limit`.
    async fn list_users(
        &mut self,
        filter: &UserFilter,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<UserRecord>>;
}

/// The columns of [`UserRecord`], for the queries below.
macro_rules! user_columns {
    () => {
        "id, email, display_name, password_hash, role, disabled, created_at, updated_at, \
         email_verified_at"
    };
}

crate::for_each_backend! {
    use crate::db::Dialect;

    #[async_trait]
    impl UserStore for Connection<DB> {
        async fn insert_user(&mut self, user: &UserRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO users (id, email, display_name, password_hash, role, disabled, created_at, updated_at, \
                 email_verified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(user.id)
            .bind(&user.email)
            .bind(&user.display_name)
            .bind(&user.password_hash)
            .bind(&user.role)
            .bind(user.disabled)
            .bind(user.created_at)
            .bind(user.updated_at)
            .bind(user.email_verified_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn user_by_id(&mut self, id: Uuid) -> StoreResult<Option<UserRecord>> {
            const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
            Ok(sqlx::query_as(SQL).bind(id).fetch_optional(self.db()).await?)
        }

        async fn user_by_email(&mut self, email: &str) -> StoreResult<Option<UserRecord>> {
            const SQL: &str =
                concat!("SELECT ", user_columns!(), " FROM users WHERE lower(email) = lower($1)");
            Ok(sqlx::query_as(SQL).bind(email).fetch_optional(self.db()).await?)
        }

        async fn update_profile(&mut self, user: &UserRecord) -> StoreResult<()> {
            sqlx::query(
                "UPDATE users SET email = $2, display_name = $3, password_hash = $4, updated_at = $5, \
                 email_verified_at = $6 WHERE id = $1",
            )
            .bind(user.id)
            .bind(&user.email)
            .bind(&user.display_name)
            .bind(&user.password_hash)
            .bind(user.updated_at)
            .bind(user.email_verified_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn set_email_verified(
            &mut self,
            user_id: Uuid,
            email: &str,
            now: DateTime<Utc>,
        ) -> StoreResult<bool> {
            let result = sqlx::query(
                "UPDATE users SET email_verified_at = $2 WHERE id = $1 AND lower(email) = lower($3)",
            )
            .bind(user_id)
            .bind(now)
            .bind(email)
            .execute(self.db())
            .await?;
            Ok(result.rows_affected() == 1)
        }

        async fn update_status(&mut self, user: &UserRecord) -> StoreResult<()> {
            sqlx::query("UPDATE users SET role = $2, disabled = $3, updated_at = $4 WHERE id = $1")
                .bind(user.id)
                .bind(&user.role)
                .bind(user.disabled)
                .bind(user.updated_at)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn list_users(
            &mut self,
            filter: &UserFilter,
            after: Option<Uuid>,
            limit: u32,
        ) -> StoreResult<Vec<UserRecord>> {
            let mut query = sqlx::QueryBuilder::<DB>::new(concat!("SELECT ", user_columns!(), " FROM users WHERE 1 = 1"));
            if let Some(text) = &filter.text {
                let like = <DB as Dialect>::ILIKE;
                let pattern = crate::db::like_pattern(text);
                query.push(format!(" AND (email {like} "));
                query.push_bind(pattern.clone());
                query.push(format!(" ESCAPE '\\' OR display_name {like} "));
                query.push_bind(pattern);
                query.push(" ESCAPE '\\')");
            }
            if let Some(role) = filter.role {
                query.push(" AND role = ").push_bind(role.as_str());
            }
            if let Some(disabled) = filter.disabled {
                query.push(" AND disabled = ").push_bind(disabled);
            }
            if let Some(after) = after {
                query.push(" AND id > ").push_bind(after);
            }
            query.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
            Ok(query.build_query_as().fetch_all(self.db()).await?)
        }
    }
}
