-- A task's activity: one entry per created task and per changed field, written in the same
-- transaction as the change, removed with the task.
CREATE TABLE task_activity (
    id          blob PRIMARY KEY,
    task_id     blob NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    occurred_at text NOT NULL,
    actor_id    blob,
    action      text NOT NULL,
    field       text,
    old_value   text,
    new_value   text,
    request_id  text NOT NULL
);
CREATE INDEX task_activity_task_idx ON task_activity (task_id, id);

-- "My tasks" finds tasks by creator as well as by assignee.
CREATE INDEX tasks_created_by_idx ON tasks (created_by);
