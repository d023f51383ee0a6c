//! Project domain types and field limits.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::projects::store::{MemberRecord, ProjectRecord, ProjectWithRole};

/// Longest project name (characters).
pub const NAME_MAX: usize = 100;
/// Longest project description (characters).
pub const DESCRIPTION_MAX: usize = 2000;

/// A member's role in one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ProjectRole {
    /// Full control: rename, delete, manage members, read the audit log.
    Owner,
    /// Reads and writes tasks.
    Member,
    /// Reads only.
    Viewer,
}

impl ProjectRole {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    /// Parses the stored form (unknown values read as `viewer`, the least privilege).
    pub fn from_stored(value: &str) -> Self {
        match value {
            "owner" => Self::Owner,
            "member" => Self::Member,
            _ => Self::Viewer,
        }
    }

    /// Whether this role may create, change and delete tasks.
    pub fn can_write_tasks(self) -> bool {
        matches!(self, Self::Owner | Self::Member)
    }
}

/// A project, as seen by one of its members.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Project {
    /// Project id.
    pub id: Uuid,
    /// Name (1 to 100 characters).
    #[oai(validator(max_length = 100))]
    pub name: String,
    /// Description (up to 2000 characters).
    #[oai(validator(max_length = 2000))]
    pub description: String,
    /// Who created it.
    pub created_by: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its name or description last changed.
    pub updated_at: DateTime<Utc>,
    /// The caller's role in this project.
    pub role: ProjectRole,
}

impl Project {
    /// A project row with the caller's role.
    pub fn new(record: ProjectRecord, role: ProjectRole) -> Self {
        Self {
            id: record.id,
            name: record.name,
            description: record.description,
            created_by: record.created_by,
            created_at: record.created_at,
            updated_at: record.updated_at,
            role,
        }
    }
}

/// The document's example project.
/// A project as its events show it: the project document without the reader's own `role`.
pub fn project_data(record: &ProjectRecord) -> serde_json::Value {
    serde_json::json!({
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "created_by": record.created_by,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    })
}

impl poem_openapi::types::Example for Project {
    fn example() -> Self {
        let at = crate::http::openapi::example_time();
        Self {
            id: Uuid::from_u128(0x0194f0a9_1111_7222_8333_444455556666),
            name: "Website relaunch".to_owned(),
            description: "Everything for the November release.".to_owned(),
            created_by: Uuid::from_u128(0x0194f0a8_aaaa_7bbb_8ccc_dddddddddddd),
            created_at: at,
            updated_at: at,
            role: ProjectRole::Owner,
        }
    }
}

/// A member of a project.
#[derive(Debug, Clone, Object)]
pub struct Member {
    /// The member's user id.
    pub user_id: Uuid,
    /// The member's email.
    #[oai(validator(max_length = 254, pattern = "^[^@\\s]+@[^@\\s]+$"))]
    pub email: String,
    /// The member's display name (1 to 100 characters).
    #[oai(validator(max_length = 100))]
    pub display_name: String,
    /// The member's role in the project.
    pub role: ProjectRole,
    /// When they joined the project.
    pub added_at: DateTime<Utc>,
}

impl From<ProjectWithRole> for Project {
    fn from(row: ProjectWithRole) -> Self {
        Self::new(row.project, ProjectRole::from_stored(&row.role))
    }
}

impl From<MemberRecord> for Member {
    fn from(r: MemberRecord) -> Self {
        Self {
            user_id: r.user_id,
            email: r.email,
            display_name: r.display_name,
            role: ProjectRole::from_stored(&r.role),
            added_at: r.added_at,
        }
    }
}
