-- Expand (side-by-side test of loadtests/side-by-side/run.sh; not a migration of the service).
-- A nullable column without a default: a catalog change only, no rewrite, the ACCESS EXCLUSIVE
-- lock held for milliseconds. The release still running never names it, so it is unaffected.
ALTER TABLE tasks ADD COLUMN estimate_minutes integer;
