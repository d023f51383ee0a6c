-- no-transaction
-- Expand, second step: the index built CONCURRENTLY (writes go on while it builds), so sqlx must
-- run it outside a transaction, and it must be the file's only statement (several statements in
-- one query string form an implicit transaction, where CONCURRENTLY fails).
CREATE INDEX CONCURRENTLY tasks_estimate_idx ON tasks (estimate_minutes);
