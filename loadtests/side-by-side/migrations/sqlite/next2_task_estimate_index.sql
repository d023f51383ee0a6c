-- SQLite twin of postgres/next2_task_estimate_index.sql (SQLite has no CONCURRENTLY).
CREATE INDEX IF NOT EXISTS tasks_estimate_idx ON tasks (estimate_minutes);
