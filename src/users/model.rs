//! User domain types and the limits on their fields.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::users::store::UserRecord;

/// Longest display name (characters).
pub const DISPLAY_NAME_MAX: usize = 100;
/// Longest email address (characters, RFC 5321).
pub const EMAIL_MAX: usize = 254;

/// A user's role across the whole service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A regular user.
    User,
    /// An administrator: can list users, change roles and disabled status, and read all audit.
    Admin,
}

impl Role {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored form (unknown values read as `user`, the least privilege).
    pub fn from_stored(value: &str) -> Self {
        if value == "admin" {
            Self::Admin
        } else {
            Self::User
        }
    }
}

/// A user as the API shows it (never with a password hash).
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(example)]
pub struct User {
    /// The user's id.
    pub id: Uuid,
    /// Email address (stored lower-case; unique regardless of case).
    #[oai(validator(max_length = 254, pattern = "^[^@\\s]+@[^@\\s]+$"))]
    pub email: String,
    /// Name shown to other project members (1 to 100 characters).
    #[oai(validator(max_length = 100))]
    pub display_name: String,
    /// Role across the service.
    pub role: Role,
    /// A disabled user cannot log in, refresh, or use existing tokens.
    pub disabled: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether the owner of the account has proved they receive mail at `email` (through the
    /// link sent on registration or email change, or an administrator's `tasklight
    /// verify-email`). Invitations to the address stay hidden until it is.
    #[serde(default)]
    pub email_verified: bool,
}

/// The document's example user.
impl poem_openapi::types::Example for User {
    fn example() -> Self {
        let at = crate::http::openapi::example_time();
        Self {
            id: Uuid::from_u128(0x0194f0a8_aaaa_7bbb_8ccc_dddddddddddd),
            email: "ada@example.com".to_owned(),
            display_name: "Ada Lovelace".to_owned(),
            role: Role::User,
            disabled: false,
            created_at: at,
            updated_at: at,
            email_verified: true,
        }
    }
}

impl From<UserRecord> for User {
    fn from(record: UserRecord) -> Self {
        Self {
            id: record.id,
            email: record.email,
            display_name: record.display_name,
            role: Role::from_stored(&record.role),
            disabled: record.disabled,
            created_at: record.created_at,
            updated_at: record.updated_at,
            email_verified: record.email_verified_at.is_some(),
        }
    }
}

/// Normalises an email (trimmed, lower-case) and checks its shape: something@domain.tld.
pub fn parse_email(field: &str, raw: &str) -> Result<String, crate::error::FieldError> {
    let email = raw.trim().to_lowercase();
    let fail = |message: &str| Err(crate::error::FieldError::new(field, message));
    if email.chars().count() > EMAIL_MAX {
        return fail("must be at most 254 characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return fail("must be an email address such as ada@example.com");
    };
    // ASCII labels (internationalised domains arrive as punycode), at least two, none empty.
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local.is_empty() || !domain_ok || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return fail("must be an email address such as ada@example.com");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::parse_email;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            parse_email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "a b@example.com",
            "ada@ex_ample.com",
        ] {
            assert!(parse_email("email", bad).is_err(), "{bad}");
        }
    }
}
