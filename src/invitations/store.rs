//! Invitation storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// A stored invitation with its project's name and its inviter's display name.
#[derive(sqlx::FromRow)]
pub struct InvitationRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// The project it invites into.
    pub project_id: Uuid,
    /// The project's name.
    pub project_name: String,
    /// The invited address, lower-case.
    pub email: String,
    /// `owner`, `member` or `viewer`.
    pub role: String,
    /// The owner who invited.
    pub invited_by: Uuid,
    /// The inviter's display name.
    pub invited_by_name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// `pending`, `accepted`, `declined`, `revoked` or `expired`.
    pub status: String,
}

/// A new invitation.
pub struct NewInvitation<'a> {
    /// UUIDv7.
    pub id: Uuid,
    /// The project.
    pub project_id: Uuid,
    /// Lower-case address.
    pub email: &'a str,
    /// The role the invitee will get.
    pub role: &'a str,
    /// The owner inviting.
    pub invited_by: Uuid,
    /// Now.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Storage of invitations.
#[async_trait]
pub trait InvitationStore: Send {
    /// Inserts a pending invitation (conflict if the address has one pending in the project).
    async fn insert_invitation(&mut self, invitation: &NewInvitation<'_>) -> StoreResult<()>;
    /// An invitation by id, whatever its status.
    async fn invitation(&mut self, id: Uuid) -> StoreResult<Option<InvitationRecord>>;
    /// The pending invitation (expired or not) of `email` to the project, if any.
    async fn pending_invitation(
        &mut self,
        project_id: Uuid,
        email: &str,
    ) -> StoreResult<Option<InvitationRecord>>;
    /// Moves a pending invitation to `status`; false if it was not pending any more.
    async fn close_invitation(
        &mut self,
        id: Uuid,
        status: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The project's pending, unexpired invitations in creation order after `after`.
    async fn project_invitations(
        &mut self,
        project_id: Uuid,
        now: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationRecord>>;
    /// The pending, unexpired invitations to `user_id`'s email, only if that email is
    /// verified, in creation order after `after`.
    async fn invitations_for_user(
        &mut self,
        user_id: Uuid,
        now: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationRecord>>;
    /// Whether a member of the project has this email (compared without regard to case).
    async fn member_has_email(&mut self, project_id: Uuid, email: &str) -> StoreResult<bool>;
    /// Deletes up to `limit` invitations that closed before `before`: answered, revoked or
    /// replaced before it, or still pending but expired before it. Returns how many.
    async fn delete_invitations_closed_before(
        &mut self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<u64>;
}

/// The columns of [`InvitationRecord`], from `invitations i` with its project and inviter.
macro_rules! invitation_columns {
    () => {
        "SELECT i.id, i.project_id, p.name AS project_name, i.email, i.role, i.invited_by, \
         u.display_name AS invited_by_name, i.created_at, i.expires_at, i.status \
         FROM invitations i JOIN projects p ON p.id = i.project_id \
         JOIN users u ON u.id = i.invited_by "
    };
}

crate::for_each_backend! {
    #[async_trait]
    impl InvitationStore for Connection<DB> {
        async fn insert_invitation(&mut self, i: &NewInvitation<'_>) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO invitations (id, project_id, email, role, invited_by, created_at, expires_at, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')",
            )
            .bind(i.id)
            .bind(i.project_id)
            .bind(i.email)
            .bind(i.role)
            .bind(i.invited_by)
            .bind(i.created_at)
            .bind(i.expires_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn invitation(&mut self, id: Uuid) -> StoreResult<Option<InvitationRecord>> {
            const SQL: &str = concat!(invitation_columns!(), "WHERE i.id = $1");
            Ok(sqlx::query_as(SQL).bind(id).fetch_optional(self.db()).await?)
        }

        async fn pending_invitation(&mut self, project_id: Uuid, email: &str) -> StoreResult<Option<InvitationRecord>> {
            const SQL: &str = concat!(
                invitation_columns!(),
                "WHERE i.project_id = $1 AND i.email = lower($2) AND i.status = 'pending'"
            );
            Ok(sqlx::query_as(SQL).bind(project_id).bind(email).fetch_optional(self.db()).await?)
        }

        async fn close_invitation(&mut self, id: Uuid, status: &str, now: DateTime<Utc>) -> StoreResult<bool> {
            let result = sqlx::query(
                "UPDATE invitations SET status = $2, responded_at = $3 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(status)
            .bind(now)
            .execute(self.db())
            .await?;
            Ok(result.rows_affected() == 1)
        }

        async fn project_invitations(
            &mut self,
            project_id: Uuid,
            now: DateTime<Utc>,
            after: Option<Uuid>,
            limit: u32,
        ) -> StoreResult<Vec<InvitationRecord>> {
            const SQL: &str = concat!(
                invitation_columns!(),
                "WHERE i.project_id = $1 AND i.status = 'pending' AND i.expires_at > $2 \
                 AND ($3 IS NULL OR i.id > $3) ORDER BY i.id LIMIT $4"
            );
            Ok(sqlx::query_as(SQL)
                .bind(project_id)
                .bind(now)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.db())
                .await?)
        }

        async fn invitations_for_user(
            &mut self,
            user_id: Uuid,
            now: DateTime<Utc>,
            after: Option<Uuid>,
            limit: u32,
        ) -> StoreResult<Vec<InvitationRecord>> {
            const SQL: &str = concat!(
                invitation_columns!(),
                "JOIN users v ON i.email = lower(v.email) \
                 WHERE v.id = $1 AND v.email_verified_at IS NOT NULL \
                 AND i.status = 'pending' AND i.expires_at > $2 \
                 AND ($3 IS NULL OR i.id > $3) ORDER BY i.id LIMIT $4"
            );
            Ok(sqlx::query_as(SQL)
                .bind(user_id)
                .bind(now)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.db())
                .await?)
        }

        async fn delete_invitations_closed_before(&mut self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
            let done = sqlx::query(
                "DELETE FROM invitations WHERE id IN (SELECT id FROM invitations WHERE \
                 (status <> 'pending' AND COALESCE(responded_at, expires_at) < $1) \
                 OR (status = 'pending' AND expires_at < $1) LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(self.db())
            .await?;
            Ok(done.rows_affected())
        }

        async fn member_has_email(&mut self, project_id: Uuid, email: &str) -> StoreResult<bool> {
            let row: Option<(i32,)> = sqlx::query_as(
                "SELECT 1 FROM project_members m JOIN users u ON u.id = m.user_id \
                 WHERE m.project_id = $1 AND lower(u.email) = lower($2)",
            )
            .bind(project_id)
            .bind(email)
            .fetch_optional(self.db())
            .await?;
            Ok(row.is_some())
        }
    }
}
