-- Tasklight schema, PostgreSQL dialect: native uuid, timestamptz, jsonb and a case-insensitive
-- unique email. Keep in step with migrations/sqlite/0001_initial.sql.

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL,
    display_name  text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('user', 'admin')),
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A login session is one refresh-token family: rotation keeps the session, reuse revokes it.
CREATE TABLE sessions (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE refresh_tokens (
    token_hash text        PRIMARY KEY,
    session_id uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE projects (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL,
    created_by  uuid        NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE project_members (
    project_id uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE tasks (
    id          uuid        PRIMARY KEY,
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title       text        NOT NULL,
    description text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    priority    integer     NOT NULL CHECK (priority BETWEEN 1 AND 4),
    assignee_id uuid        REFERENCES users (id) ON DELETE SET NULL,
    due_at      timestamptz,
    created_by  uuid        NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     integer     NOT NULL
);
CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at, id);
CREATE INDEX tasks_project_updated_idx ON tasks (project_id, updated_at, id);
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id);

CREATE TABLE task_tags (
    task_id uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tag     text NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_tag_idx ON task_tags (tag);

-- Audit entries outlive what they describe: no foreign keys.
CREATE TABLE audit_log (
    id          uuid        PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    actor_id    uuid,
    action      text        NOT NULL,
    entity_type text        NOT NULL,
    entity_id   uuid        NOT NULL,
    project_id  uuid,
    summary     jsonb       NOT NULL,
    request_id  text        NOT NULL,
    instance_id text        NOT NULL
);
CREATE INDEX audit_log_project_idx ON audit_log (project_id, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);
