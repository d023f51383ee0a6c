-- Tasklight schema, SQLite dialect: uuids as 16-byte blobs, times as RFC 3339 text (sorts in
-- time order), JSON as text. Keep in step with migrations/postgres/0001_initial.sql.

CREATE TABLE users (
    id            blob        PRIMARY KEY,
    email         text        NOT NULL COLLATE NOCASE,
    display_name  text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('user', 'admin')),
    disabled      integer     NOT NULL DEFAULT 0,
    created_at    text        NOT NULL,
    updated_at    text        NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A login session is one refresh-token family: rotation keeps the session, reuse revokes it.
CREATE TABLE sessions (
    id             blob        PRIMARY KEY,
    user_id        blob        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     text        NOT NULL,
    expires_at     text        NOT NULL,
    revoked_at     text       ,
    revoked_reason text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE refresh_tokens (
    token_hash text        PRIMARY KEY,
    session_id blob        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at text        NOT NULL,
    expires_at text        NOT NULL,
    used_at    text       
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

CREATE TABLE projects (
    id          blob        PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL,
    created_by  blob        NOT NULL REFERENCES users (id),
    created_at  text        NOT NULL,
    updated_at  text        NOT NULL
);

CREATE TABLE project_members (
    project_id blob        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    blob        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    added_at   text        NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE tasks (
    id          blob        PRIMARY KEY,
    project_id  blob        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title       text        NOT NULL,
    description text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    priority    integer     NOT NULL CHECK (priority BETWEEN 1 AND 4),
    assignee_id blob        REFERENCES users (id) ON DELETE SET NULL,
    due_at      text,
    created_by  blob        NOT NULL REFERENCES users (id),
    created_at  text        NOT NULL,
    updated_at  text        NOT NULL,
    version     integer     NOT NULL
);
CREATE INDEX tasks_project_created_idx ON tasks (project_id, created_at, id);
CREATE INDEX tasks_project_updated_idx ON tasks (project_id, updated_at, id);
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id);

CREATE TABLE task_tags (
    task_id blob NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tag     text NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_tag_idx ON task_tags (tag);

-- Audit entries outlive what they describe: no foreign keys.
CREATE TABLE audit_log (
    id          blob        PRIMARY KEY,
    occurred_at text        NOT NULL,
    actor_id    blob,
    action      text        NOT NULL,
    entity_type text        NOT NULL,
    entity_id   blob        NOT NULL,
    project_id  blob,
    summary     text        NOT NULL,
    request_id  text        NOT NULL,
    instance_id text        NOT NULL
);
CREATE INDEX audit_log_project_idx ON audit_log (project_id, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);
