-- Comments on tasks: Markdown text, stored as sent. A task's comments go with it.
CREATE TABLE comments (
    id         blob    PRIMARY KEY,
    task_id    blob    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    author_id  blob    NOT NULL REFERENCES users (id),
    body       text    NOT NULL,
    created_at text    NOT NULL,
    updated_at text    NOT NULL,
    version    integer NOT NULL
);
-- A task's comments, oldest first (the list's keyset order).
CREATE INDEX comments_task_created_idx ON comments (task_id, created_at, id);

-- The count the task document shows. The application changes it, and bumps the task's version,
-- in the transaction that adds or deletes a comment (see the README, "Comments").
ALTER TABLE tasks ADD COLUMN comment_count integer NOT NULL DEFAULT 0;
