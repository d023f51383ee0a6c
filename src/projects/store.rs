//! Project and membership storage.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Connection, StoreResult};

/// A stored project.
#[derive(Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ProjectRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// One line, 1 to 100 characters.
    pub name: String,
    /// Up to 2000 characters; empty when none was given.
    pub description: String,
    /// The user who created it (its first owner).
    pub created_by: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its name or description last changed.
    pub updated_at: DateTime<Utc>,
}

/// A project with the role of the user it was looked up for.
#[derive(sqlx::FromRow)]
pub struct ProjectWithRole {
    /// The project.
    #[sqlx(flatten)]
    pub project: ProjectRecord,
    /// The user's role in it.
    pub role: String,
}

/// A member with their user's name and email.
#[derive(sqlx::FromRow)]
pub struct MemberRecord {
    /// The member's user.
    pub user_id: Uuid,
    /// The user's email.
    pub email: String,
    /// User's display name.
    pub display_name: String,
    /// Role in the project.
    pub role: String,
    /// When they joined the project.
    pub added_at: DateTime<Utc>,
}

/// Storage of projects and members.
#[async_trait]
pub trait ProjectStore: Send {
    /// Inserts a project.
    async fn insert_project(&mut self, project: &ProjectRecord) -> StoreResult<()>;
    /// Locks a project row for the rest of the transaction (PostgreSQL); false if it is absent.
    async fn lock_project(&mut self, id: Uuid) -> StoreResult<bool>;
    /// A project, whoever asks.
    async fn project_by_id(&mut self, id: Uuid) -> StoreResult<Option<ProjectRecord>>;
    /// A project with `user_id`'s role, if they are a member.
    async fn project_for_member(
        &mut self,
        id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<ProjectWithRole>>;
    /// `user_id`'s role in the project, if they are a member.
    async fn member_role(&mut self, project_id: Uuid, user_id: Uuid)
    -> StoreResult<Option<String>>;
    /// Writes name, description and updated_at.
    async fn update_project(&mut self, project: &ProjectRecord) -> StoreResult<()>;
    /// Deletes a project (its members and tasks go with it).
    async fn delete_project(&mut self, id: Uuid) -> StoreResult<()>;
    /// Projects `user_id` belongs to, in creation order after `after`.
    async fn projects_of(
        &mut self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ProjectWithRole>>;
    /// Adds a member.
    async fn insert_member(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
        role: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Changes a member's role.
    async fn update_member_role(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
        role: &str,
    ) -> StoreResult<()>;
    /// Removes a member.
    async fn delete_member(&mut self, project_id: Uuid, user_id: Uuid) -> StoreResult<()>;
    /// The user ids of every member (to invalidate their cached roles).
    async fn member_ids(&mut self, project_id: Uuid) -> StoreResult<Vec<Uuid>>;
    /// How many owners the project has.
    async fn count_owners(&mut self, project_id: Uuid) -> StoreResult<i64>;
    /// One member.
    async fn member(
        &mut self,
        project_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<MemberRecord>>;
    /// Members ordered by user id after `after`.
    async fn members(
        &mut self,
        project_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<MemberRecord>>;
}

/// The columns of [`ProjectWithRole`], from `projects p` joined with `project_members m`.
macro_rules! project_with_role {
    () => {
        "SELECT p.id, p.name, p.description, p.created_by, p.created_at, p.updated_at, m.role \
         FROM projects p JOIN project_members m ON m.project_id = p.id "
    };
}

/// The columns of [`MemberRecord`].
macro_rules! member_columns {
    () => {
        "SELECT m.user_id, u.email, u.display_name, m.role, m.added_at \
         FROM project_members m JOIN users u ON u.id = m.user_id "
    };
}

crate::for_each_backend! {
    use crate::db::Dialect;

    #[async_trait]
    impl ProjectStore for Connection<DB> {
        async fn insert_project(&mut self, p: &ProjectRecord) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO projects (id, name, description, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(p.id)
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.created_by)
            .bind(p.created_at)
            .bind(p.updated_at)
            .execute(self.db())
            .await?;
            Ok(())
        }

        async fn lock_project(&mut self, id: Uuid) -> StoreResult<bool> {
            let sql = if <DB as Dialect>::FOR_UPDATE.is_empty() {
                "SELECT id FROM projects WHERE id = $1"
            } else {
                "SELECT id FROM projects WHERE id = $1 FOR UPDATE"
            };
            let row: Option<(Uuid,)> = sqlx::query_as(sql).bind(id).fetch_optional(self.db()).await?;
            Ok(row.is_some())
        }

        async fn project_for_member(&mut self, id: Uuid, user_id: Uuid) -> StoreResult<Option<ProjectWithRole>> {
            const SQL: &str = concat!(project_with_role!(), "WHERE p.id = $1 AND m.user_id = $2");
            Ok(sqlx::query_as(SQL).bind(id).bind(user_id).fetch_optional(self.db()).await?)
        }

        async fn project_by_id(&mut self, id: Uuid) -> StoreResult<Option<ProjectRecord>> {
            Ok(sqlx::query_as(
                "SELECT id, name, description, created_by, created_at, updated_at \
                 FROM projects WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(self.db())
            .await?)
        }

        async fn member_role(&mut self, project_id: Uuid, user_id: Uuid) -> StoreResult<Option<String>> {
            let row: Option<(String,)> = sqlx::query_as(
                "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
            )
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(self.db())
            .await?;
            Ok(row.map(|(role,)| role))
        }

        async fn update_project(&mut self, p: &ProjectRecord) -> StoreResult<()> {
            sqlx::query("UPDATE projects SET name = $2, description = $3, updated_at = $4 WHERE id = $1")
                .bind(p.id)
                .bind(&p.name)
                .bind(&p.description)
                .bind(p.updated_at)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn delete_project(&mut self, id: Uuid) -> StoreResult<()> {
            sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(self.db()).await?;
            Ok(())
        }

        async fn projects_of(&mut self, user_id: Uuid, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<ProjectWithRole>> {
            const SQL: &str = concat!(
                project_with_role!(),
                "WHERE m.user_id = $1 AND ($2 IS NULL OR p.id > $2) ORDER BY p.id LIMIT $3"
            );
            Ok(sqlx::query_as(SQL)
                .bind(user_id)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.db())
                .await?)
        }

        async fn insert_member(&mut self, project_id: Uuid, user_id: Uuid, role: &str, now: DateTime<Utc>) -> StoreResult<()> {
            sqlx::query("INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)")
                .bind(project_id)
                .bind(user_id)
                .bind(role)
                .bind(now)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn update_member_role(&mut self, project_id: Uuid, user_id: Uuid, role: &str) -> StoreResult<()> {
            sqlx::query("UPDATE project_members SET role = $3 WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .bind(role)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn delete_member(&mut self, project_id: Uuid, user_id: Uuid) -> StoreResult<()> {
            sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .execute(self.db())
                .await?;
            Ok(())
        }

        async fn member_ids(&mut self, project_id: Uuid) -> StoreResult<Vec<Uuid>> {
            let rows: Vec<(Uuid,)> =
                sqlx::query_as("SELECT user_id FROM project_members WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_all(self.db())
                    .await?;
            Ok(rows.into_iter().map(|(id,)| id).collect())
        }

        async fn count_owners(&mut self, project_id: Uuid) -> StoreResult<i64> {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM project_members WHERE project_id = $1 AND role = 'owner'",
            )
            .bind(project_id)
            .fetch_one(self.db())
            .await?;
            Ok(count)
        }

        async fn member(&mut self, project_id: Uuid, user_id: Uuid) -> StoreResult<Option<MemberRecord>> {
            const SQL: &str = concat!(member_columns!(), "WHERE m.project_id = $1 AND m.user_id = $2");
            Ok(sqlx::query_as(SQL).bind(project_id).bind(user_id).fetch_optional(self.db()).await?)
        }

        async fn members(&mut self, project_id: Uuid, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<MemberRecord>> {
            const SQL: &str = concat!(
                member_columns!(),
                "WHERE m.project_id = $1 AND ($2 IS NULL OR m.user_id > $2) ORDER BY m.user_id LIMIT $3"
            );
            Ok(sqlx::query_as(SQL)
                .bind(project_id)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.db())
                .await?)
        }
    }
}
