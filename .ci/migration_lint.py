#!/usr/bin/env python3
"""Migration lint: PostgreSQL migrations must not lock a table that already holds data for long,
nor break the release that is still running beside them (expand, migrate, contract; README,
"Schema changes without downtime").

Every statement of migrations/postgres/*.sql is checked, in version order, against what earlier
migrations created. On a table an earlier migration created ("an existing table"):

  index-not-concurrent   CREATE INDEX without CONCURRENTLY (blocks writes while it builds); a
                         migration that builds one CONCURRENTLY must start with `-- no-transaction`
                         (sqlx runs it outside a transaction, as PostgreSQL requires) and hold no
                         other statement (several statements in one query string are one implicit
                         transaction, where CONCURRENTLY fails)
  volatile-default       ADD COLUMN ... DEFAULT now()/random()/gen_random_uuid()/clock_timestamp()
                         (rewrites the table under an exclusive lock)
  column-type            ALTER COLUMN ... TYPE (rewrites the table under an exclusive lock)
  set-not-null           ALTER COLUMN ... SET NOT NULL (scans the table under an exclusive lock;
                         add a CHECK (...) NOT VALID, VALIDATE it, then set it)
  constraint-validated   ADD CONSTRAINT (FOREIGN KEY or CHECK) without NOT VALID (scans under lock)
  full-table-update      UPDATE or DELETE without WHERE (one transaction over every row; backfill
                         in batches from the service or a script instead)
  destructive            DROP TABLE, DROP COLUMN, RENAME (the release still running reads them:
                         a contract step, shipped a release after the code stopped using them)

A statement may be allowed with a comment on the line before it:
    -- lint: allow <rule> <why, in words>
Migrations up to BASELINE were written before this lint and have run on every database since;
their findings are listed in GRANDFATHERED and reported, not failed (a migration's text cannot
change once applied: its checksum is recorded).

Usage: .ci/migration_lint.py [DIR]    (default migrations/postgres); exit 1 on a finding.
"""

import pathlib
import re
import sys

BASELINE = 10
GRANDFATHERED = {
    ("0006_task_search.sql", "full-table-update"),
    ("0006_task_search.sql", "index-not-concurrent"),
    ("0007_task_activity.sql", "index-not-concurrent"),
}
VOLATILE = re.compile(r"\b(now|random|gen_random_uuid|clock_timestamp|uuid_generate_v4)\s*\(", re.I)
ALLOW = re.compile(r"--\s*lint:\s*allow\s+([a-z-]+)\s+\S", re.I)


def statements(text):
    """Splits SQL into (statement, comment lines just before it); `$$` bodies and comments are
    kept whole, and `;` inside quotes or `$$` does not split."""
    out, current, i = [], [], 0
    pending_comments = []
    while i < len(text):
        if text.startswith("--", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            if not "".join(current).strip():
                pending_comments.append(text[i:end])
            i = end
            continue
        if text.startswith("$$", i):
            end = text.find("$$", i + 2)
            end = len(text) if end < 0 else end + 2
            current.append(text[i:end])
            i = end
            continue
        if text[i] == "'":
            end = i + 1
            while end < len(text):
                if text[end] == "'" and text.startswith("''", end):
                    end += 2
                    continue
                if text[end] == "'":
                    break
                end += 1
            current.append(text[i:end + 1])
            i = end + 1
            continue
        if text[i] == ";":
            statement = " ".join("".join(current).split())
            if statement:
                out.append((statement, pending_comments))
            current, pending_comments = [], []
            i += 1
            continue
        current.append(text[i])
        i += 1
    statement = " ".join("".join(current).split())
    if statement:
        out.append((statement, pending_comments))
    return out


def table_of(pattern, statement):
    match = re.search(pattern, statement, re.I)
    return match.group(1).strip('"').lower() if match else None


def findings(statement, existing, no_transaction):
    """The rules `statement` breaks, given the tables that existed before its migration."""
    found = []
    s = statement
    created_index = re.match(r"CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?", s, re.I)
    if created_index:
        table = table_of(r"\bON\s+(?:ONLY\s+)?([\w\"]+)", s)
        if table in existing and not created_index.group(2):
            found.append("index-not-concurrent")
        if created_index.group(2) and not no_transaction:
            found.append("index-not-concurrent")
    alter = table_of(r"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w\"]+)", s)
    if alter in existing:
        if re.search(r"\bADD\s+COLUMN\b", s, re.I) and re.search(r"\bDEFAULT\b", s, re.I):
            default = re.split(r"\bDEFAULT\b", s, flags=re.I)[1]
            if VOLATILE.search(default):
                found.append("volatile-default")
        if re.search(r"\bALTER\s+COLUMN\s+[\w\"]+\s+(SET\s+DATA\s+)?TYPE\b", s, re.I):
            found.append("column-type")
        if re.search(r"\bSET\s+NOT\s+NULL\b", s, re.I):
            found.append("set-not-null")
        if re.search(r"\bADD\s+(CONSTRAINT\s+[\w\"]+\s+)?(FOREIGN\s+KEY|CHECK)\b", s, re.I) and not re.search(
            r"\bNOT\s+VALID\b", s, re.I
        ):
            found.append("constraint-validated")
        if re.search(r"\b(DROP\s+COLUMN|RENAME)\b", s, re.I):
            found.append("destructive")
    dropped = table_of(r"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([\w\"]+)", s)
    if dropped in existing:
        found.append("destructive")
    for verb, pattern in (("UPDATE", r"^UPDATE\s+(?:ONLY\s+)?([\w\"]+)"), ("DELETE", r"^DELETE\s+FROM\s+(?:ONLY\s+)?([\w\"]+)")):
        table = table_of(pattern, s)
        if table in existing and not re.search(r"\bWHERE\b", s, re.I):
            found.append("full-table-update")
    return found


def lint(directory):
    files = sorted(pathlib.Path(directory).glob("*.sql"))
    if not files:
        sys.exit(f"migration-lint: no migrations in {directory}")
    existing, failures, grandfathered, checked = set(), [], [], 0
    for path in files:
        version = int(path.name.split("_", 1)[0])
        text = path.read_text()
        no_transaction = text.lstrip().lower().startswith("-- no-transaction")
        created_here = set()
        parsed = statements(text)
        concurrent = [st for st, _ in parsed if re.match(r"CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY", st, re.I)]
        if concurrent and len(parsed) > 1:
            failures.append(f"{path.name}: index-not-concurrent: CREATE INDEX CONCURRENTLY must be "
                            f"the migration's only statement ({len(parsed)} here)")
        for statement, comments in parsed:
            checked += 1
            allowed = {m.group(1).lower() for c in comments for m in [ALLOW.search(c)] if m}
            for rule in findings(statement, existing, no_transaction):
                where = f"{path.name}: {rule}: {statement[:110]}"
                if rule in allowed:
                    continue
                if version <= BASELINE and (path.name, rule) in GRANDFATHERED:
                    grandfathered.append(where)
                else:
                    failures.append(where)
            table = table_of(r"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w\"]+)", statement)
            if table:
                created_here.add(table)
        existing |= created_here
    return files, checked, failures, grandfathered


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "migrations/postgres"
    files, checked, failures, grandfathered = lint(directory)
    for line in grandfathered:
        print(f"  grandfathered (before the lint, at or below {BASELINE:04}): {line}")
    for line in failures:
        print(f"  FAIL {line}", file=sys.stderr)
    print(f"migration-lint: {len(files)} migrations, {checked} statements, {len(failures)} findings, "
          f"{len(grandfathered)} grandfathered")
    if failures:
        print("migration-lint: see the rules at the top of .ci/migration_lint.py and README, "
              "'Schema changes without downtime'; allow a statement with '-- lint: allow <rule> <why>'",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
