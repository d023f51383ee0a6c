//! Invitation domain types.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use crate::invitations::store::InvitationRecord;
use crate::projects::model::ProjectRole;

/// A pending invitation into a project.
#[derive(Debug, Clone, Object)]
pub struct Invitation {
    /// Invitation id.
    pub id: Uuid,
    /// The project it invites into.
    pub project_id: Uuid,
    /// The project's name.
    #[oai(validator(max_length = 100))]
    pub project_name: String,
    /// The invited address (lower-case).
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// The role the invitee gets on accepting.
    pub role: ProjectRole,
    /// The owner who invited.
    pub invited_by: Uuid,
    /// The inviter's display name.
    #[oai(validator(max_length = 100))]
    pub invited_by_name: String,
    /// When the invitation was made.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid (`TASKLIGHT_INVITATION_TTL_SECS` after it was made).
    pub expires_at: DateTime<Utc>,
}

impl From<InvitationRecord> for Invitation {
    fn from(r: InvitationRecord) -> Self {
        Self {
            id: r.id,
            project_id: r.project_id,
            project_name: r.project_name,
            email: r.email,
            role: ProjectRole::from_stored(&r.role),
            invited_by: r.invited_by,
            invited_by_name: r.invited_by_name,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}
