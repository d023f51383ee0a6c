-- Email verification and invitations by email. Keep in step with
-- migrations/sqlite/0008_invitations_and_email_verification.sql.

-- When the account's current email was verified; NULL: not verified. Accounts that existed
-- before this migration start unverified (nobody ever proved they own their address).
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- Single-use verification links, stored only as the SHA-256 of the token. `email` is the
-- address the link was sent to: after an email change the old link verifies nothing.
CREATE TABLE email_verification_tokens (
    token_hash text        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_verification_tokens_user_idx ON email_verification_tokens (user_id);

-- An owner's invitation of an email address (lower-case) into a project with a role.
CREATE TABLE invitations (
    id           uuid        PRIMARY KEY,
    project_id   uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email        text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    invited_by   uuid        NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    status       text        NOT NULL
                 CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired')),
    responded_at timestamptz
);
-- At most one pending invitation per project and address.
CREATE UNIQUE INDEX invitations_pending_key ON invitations (project_id, email)
    WHERE status = 'pending';
CREATE INDEX invitations_email_idx ON invitations (email, id);
