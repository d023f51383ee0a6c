-- The stored answer's status was never read (every remembered answer is a 201). This release
-- stops writing it. Expand step: the column becomes optional, so instances of the previous
-- release (which still write it) and of this one can run side by side during a rollout; a later
-- release drops it.
ALTER TABLE idempotency_keys ALTER COLUMN status DROP NOT NULL;
