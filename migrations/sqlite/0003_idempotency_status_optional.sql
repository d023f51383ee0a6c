-- The stored answer's status was never read (every remembered answer is a 201), and this release
-- stops writing it. SQLite serves one instance only, so no earlier release writes to this file
-- at the same time: the column is dropped at once.
ALTER TABLE idempotency_keys DROP COLUMN status;
