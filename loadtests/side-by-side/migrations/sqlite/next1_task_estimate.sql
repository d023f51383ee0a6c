-- SQLite twin of postgres/next1_task_estimate.sql (same version): the copy's binary embeds both
-- folders, and an SQLite database must end with the same columns.
ALTER TABLE tasks ADD COLUMN estimate_minutes integer;
