#!/usr/bin/env python3
"""Shows that .ci/migration_lint.py fails on each kind of finding and passes what is allowed:
each case is a migration added after a first one that creates the tables, in a scratch folder."""

import pathlib
import subprocess
import sys
import tempfile

LINT = pathlib.Path(__file__).with_name("migration_lint.py")
FIRST = """CREATE TABLE tasks (id uuid PRIMARY KEY, title text NOT NULL, done boolean);
CREATE TABLE notes (id uuid PRIMARY KEY, task_id uuid);
CREATE INDEX notes_task_idx ON notes (task_id);
"""
CASES = [
    # (expected rule or None for a pass, migration text)
    ("index-not-concurrent", "CREATE INDEX tasks_title_idx ON tasks (title);"),
    ("index-not-concurrent", "CREATE INDEX CONCURRENTLY tasks_title_idx ON tasks (title);"),
    (None, "-- no-transaction\nCREATE INDEX CONCURRENTLY tasks_title_idx ON tasks (title);"),
    ("index-not-concurrent", "-- no-transaction\nALTER TABLE tasks ADD COLUMN rank integer;\nCREATE INDEX CONCURRENTLY tasks_rank_idx ON tasks (rank);"),
    (None, "CREATE TABLE labels (id uuid PRIMARY KEY, name text);\nCREATE INDEX labels_name_idx ON labels (name);"),
    ("volatile-default", "ALTER TABLE tasks ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();"),
    (None, "ALTER TABLE tasks ADD COLUMN rank integer NOT NULL DEFAULT 0;"),
    ("column-type", "ALTER TABLE tasks ALTER COLUMN title TYPE varchar(200);"),
    ("set-not-null", "ALTER TABLE tasks ALTER COLUMN done SET NOT NULL;"),
    ("constraint-validated", "ALTER TABLE notes ADD CONSTRAINT notes_task_fk FOREIGN KEY (task_id) REFERENCES tasks (id);"),
    (None, "ALTER TABLE notes ADD CONSTRAINT notes_task_fk FOREIGN KEY (task_id) REFERENCES tasks (id) NOT VALID;"),
    ("full-table-update", "UPDATE tasks SET done = false;"),
    (None, "UPDATE tasks SET done = false WHERE done IS NULL AND id IN (SELECT id FROM tasks LIMIT 1000);"),
    ("full-table-update", "DELETE FROM notes;"),
    ("destructive", "ALTER TABLE tasks DROP COLUMN done;"),
    ("destructive", "ALTER TABLE tasks RENAME COLUMN title TO name;"),
    ("destructive", "DROP TABLE notes;"),
    (None, "-- lint: allow destructive contract step: nothing has read notes since 0.4\nDROP TABLE notes;"),
    (None, "CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN UPDATE tasks SET done = true; RETURN NEW; END $$ LANGUAGE plpgsql;"),
]

failed = 0
for expected, text in CASES:
    with tempfile.TemporaryDirectory() as scratch:
        folder = pathlib.Path(scratch)
        (folder / "0011_first.sql").write_text(FIRST)
        (folder / "0012_case.sql").write_text(text + "\n")
        run = subprocess.run([sys.executable, str(LINT), str(folder)], capture_output=True, text=True)
        ok = run.returncode == 0 if expected is None else (run.returncode == 1 and f": {expected}:" in run.stderr)
        if not ok:
            failed += 1
            print(f"migration-lint selftest: expected {expected or 'a pass'} for {text!r}; got exit "
                  f"{run.returncode}\n{run.stdout}{run.stderr}", file=sys.stderr)
print(f"migration-lint selftest: {len(CASES) - failed} of {len(CASES)} cases as expected")
sys.exit(1 if failed else 0)
