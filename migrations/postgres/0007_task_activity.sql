-- A task's activity: one entry per created task and per changed field, written in the same
-- transaction as the change, removed with the task.
CREATE TABLE task_activity (
    id          uuid        PRIMARY KEY,
    task_id     uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    occurred_at timestamptz NOT NULL,
    actor_id    uuid,
    action      text        NOT NULL,
    field       text,
    old_value   jsonb,
    new_value   jsonb,
    request_id  text        NOT NULL
);
CREATE INDEX task_activity_task_idx ON task_activity (task_id, id);

-- "My tasks" finds tasks by creator as well as by assignee.
CREATE INDEX tasks_created_by_idx ON tasks (created_by);
