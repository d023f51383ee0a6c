#!/usr/bin/env bash
# Figures for deploy/postgres/README.md: how big and how long backup.sh and restore-pitr.sh are
# for a Tasklight database of 100,000 tasks.
#
# Usage: BIN=/path/to/tasklight deploy/postgres/bench-backup.sh [TASKS [AFTER]]
#
#   TASKS  tasks in the database when it is backed up (default 100000)
#   AFTER  tasks written after the backups (default 10000): the restores replay their WAL from
#          the archive, as a real point-in-time recovery does
#
# Its own cluster, like check-pitr.sh (PG_BIN, default /usr/lib/postgresql/15/bin; as root the
# OS user postgres; 127.0.0.1, free ports; everything stopped and removed on exit). The schema is
# `tasklight migrate`'s; the tasks are inserted with SQL (generate_series), each with the rows the
# API writes beside a created task: its task_activity entry, its audit_log entry and its outbox
# event (a payload the size of a real one). Then:
#   1. backup.sh (plain) and backup.sh --tar, timed, sized;
#   2. AFTER more tasks, the WAL switched and archived;
#   3. restore-pitr.sh --target latest from each backup, timed; the restored cluster must hold
#      TASKS + AFTER tasks.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ME=bench-backup
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
. "$REPO/.ci/lib.sh"
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

N_TASKS=${1:-100000}
AFTER=${2:-10000}
require_bin
pg_bin initdb pg_ctl postgres psql pg_basebackup pg_verifybackup pg_controldata
export PG_BIN # backup.sh and restore-pitr.sh use the same
pg_os_user postgres

pg_scratch bench-backup
PRIMARY=$DIR/primary ARCHIVE=$DIR/archive
pg_owned_dir 0700 "$ARCHIVE"
read -r PG_PORT PORT_RESTORE < <(free_ports 2)

PG_STOP_SECONDS=60 # a fast shutdown may have much to write
PG_EXIT_LOGS=("$PRIMARY.log")
PG_EXIT_LINES=20
on_exit pg_exit_hook

bytes() { du -sb "$1" | cut -f 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

log "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), $("$PG_BIN/postgres" --version)"
pg_initdb "$PRIMARY" "$PG_PORT" "$SOCK" "bench-backup.sh: the settings of README.md, nothing tuned" \
    "wal_level = replica" "archive_mode = on" "archive_command = '$(pg_archive_command "$ARCHIVE")'"
pg_start "$PRIMARY" "the cluster"
psql_at "$PG_PORT" postgres -c 'CREATE DATABASE tasklight'
pg_migrate "$DIR" -i "PATH=$PATH" "DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/tasklight" \
    "JWT_SECRET=$(random_secret)" INSTANCE_ID=bench-backup RUST_LOG=warn

USER_ID=00000000-0000-4000-8000-000000000001
PROJECT_ID=00000000-0000-4000-8000-000000000002
psql_at "$PG_PORT" tasklight -v user="$USER_ID" -v project="$PROJECT_ID" <<'SQL'
INSERT INTO users (id, email, display_name, password_hash, role, disabled, created_at, updated_at, email_verified_at)
VALUES (:'user', 'bench@example.com', 'Bench', '$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtc2FsdA$bm90LWEtaGFzaC1ub3QtYS1oYXNoLW5vdC1hLWhhc2g',
        'user', false, now(), now(), now());
INSERT INTO projects (id, name, description, created_by, created_at, updated_at)
VALUES (:'project', 'Bench', 'The backup benchmark', :'user', now(), now());
INSERT INTO project_members (project_id, user_id, role, added_at) VALUES (:'project', :'user', 'owner', now());
SQL

# fill FROM COUNT: tasks FROM+1 .. FROM+COUNT, with the activity, audit and outbox rows the API
# writes for each, in one transaction.
fill() {
    psql_at "$PG_PORT" tasklight -v user="$USER_ID" -v project="$PROJECT_ID" -v from="$1" -v n="$2" <<'SQL'
BEGIN;
CREATE TEMP TABLE batch ON COMMIT DROP AS
    SELECT gen_random_uuid() AS id, gen_random_uuid() AS request_id, gen_random_uuid() AS event_id, i,
           clock_timestamp() AS at
    FROM generate_series(:from + 1, :from + :n) AS i;
INSERT INTO tasks (id, project_id, title, description, status, priority, created_by, created_at, updated_at, version)
    SELECT id, :'project', 'Task ' || i, 'A task of the backup benchmark, number ' || i,
           (ARRAY['todo', 'in_progress', 'done'])[1 + i % 3], 1 + i % 4, :'user', at, at, 1
    FROM batch;
INSERT INTO task_activity (id, task_id, occurred_at, actor_id, action, new_value, request_id)
    SELECT gen_random_uuid(), id, at, :'user', 'created',
           jsonb_build_object('tags', '[]'::jsonb, 'title', 'Task ' || i, 'due_at', NULL, 'status', 'todo',
                              'priority', 'medium', 'assignee_id', NULL),
           request_id::text
    FROM batch;
INSERT INTO audit_log (id, occurred_at, actor_id, action, entity_type, entity_id, project_id, summary, request_id, instance_id)
    SELECT gen_random_uuid(), at, :'user', 'task.created', 'task', id, :'project',
           jsonb_build_object('tags', '[]'::jsonb, 'title', 'Task ' || i, 'due_at', NULL, 'status', 'todo',
                              'priority', 'medium', 'assignee_id', NULL),
           request_id::text, 'bench-backup'
    FROM batch;
INSERT INTO events (id, tx_id, event_type, project_id, actor_id, entity_type, entity_id, payload, request_id,
                    traceparent, instance_id, occurred_at)
    SELECT event_id, txid_current(), 'task.created', :'project', :'user', 'task', id,
           json_build_object('id', event_id, 'type', 'task.created', 'timestamp', at, 'project_id', :'project',
               'actor_id', :'user', 'request_id', request_id,
               'data', json_build_object('assignee_id', NULL, 'comment_count', 0, 'created_at', at,
                   'created_by', :'user', 'description', 'A task of the backup benchmark, number ' || i,
                   'due_at', NULL, 'id', id, 'priority', 'medium', 'project_id', :'project', 'status', 'todo',
                   'tags', '[]'::json, 'title', 'Task ' || i, 'updated_at', at, 'version', 1))::text,
           request_id::text, '00-' || md5(id::text) || '-' || left(md5(request_id::text), 16) || '-01',
           'bench-backup', at
    FROM batch;
COMMIT;
SQL
}

T0=$(now)
fill 0 "$N_TASKS"
psql_at "$PG_PORT" tasklight -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
FILL_SECS=$(since "$T0")
DB_BYTES=$(psql_at "$PG_PORT" tasklight -c "SELECT pg_database_size('tasklight')")
TASK_BYTES=$(psql_at "$PG_PORT" tasklight -c "SELECT pg_total_relation_size('tasks')")
COUNTS=$(psql_at "$PG_PORT" tasklight -F ' ' -c "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM task_activity), (SELECT count(*) FROM audit_log), (SELECT count(*) FROM events)")
ARCHIVE_BEFORE=$(bytes "$ARCHIVE")
log "$N_TASKS tasks inserted in $FILL_SECS s (tasks, task_activity, audit_log, events: $COUNTS); database $(mib "$DB_BYTES"), of which tasks with their indexes $(mib "$TASK_BYTES")"

declare -A B_DIR=() B_BYTES=() B_SECS=() B_DETAIL=()
backup() { # NAME [--tar]
    local name=$1 out=$DIR/backup-$1.out
    shift
    "$HERE/backup.sh" "$@" "$DIR/backups" -h 127.0.0.1 -p "$PG_PORT" -U postgres >"$out" 2>&1 || {
        cat "$out" >&2
        die "backup.sh $* failed"
    }
    sed 's/^/    /' "$out"
    B_DIR[$name]=$(sed -n 's/^backup: //p' "$out")
    B_BYTES[$name]=$(sed -n 's/^size: \([0-9]*\) bytes.*/\1/p' "$out")
    B_SECS[$name]=$(sed -n 's/^seconds: \([0-9.]*\).*/\1/p' "$out")
    B_DETAIL[$name]=$(sed -n 's/^seconds: [0-9.]* (\(.*\))/\1/p' "$out")
}
log "backup.sh (plain)"
backup plain
log "backup.sh --tar"
backup tar --tar

T0=$(now)
fill "$N_TASKS" "$AFTER"
pg_archive_current "$PG_PORT" "$ARCHIVE" 60
AFTER_SECS=$(since "$T0")
ARCHIVE_BYTES=$(bytes "$ARCHIVE")
log "$AFTER more tasks in $AFTER_SECS s; WAL archive $(mib "$ARCHIVE_BYTES") ($(mib "$ARCHIVE_BEFORE") after the first $N_TASKS)"
pg_stop "$PRIMARY"

declare -A R_SECS=() R_DETAIL=()
restore() { # NAME
    local name=$1 pgdata=$DIR/restored-$1 out=$DIR/restore-$1.out count
    pg_track "$pgdata"
    "$HERE/restore-pitr.sh" --backup "${B_DIR[$name]}" --archive "$ARCHIVE" --target latest --pgdata "$pgdata" \
        --port "$PORT_RESTORE" --socket-dir "$SOCK" --timeout 600 >"$out" 2>&1 || {
        cat "$out" >&2
        die "restore-pitr.sh from the $name backup failed"
    }
    sed 's/^/    /' "$out"
    R_SECS[$name]=$(sed -n 's/^seconds: \([0-9.]*\).*/\1/p' "$out")
    R_DETAIL[$name]=$(sed -n 's/^seconds: [0-9.]* (\(.*\))/\1/p' "$out")
    count=$(psql_at "$PORT_RESTORE" tasklight -c 'SELECT count(*) FROM tasks')
    ((count == N_TASKS + AFTER)) || die "the cluster restored from the $name backup has $count tasks, not $((N_TASKS + AFTER))"
    pg_stop "$pgdata"
    rm -rf "$pgdata"
}
log "restore-pitr.sh --target latest from the plain backup"
restore plain
log "restore-pitr.sh --target latest from the tar backup"
restore tar

echo
echo "== backup and restore of $N_TASKS tasks ($(date -u +%Y-%m-%d), $(nproc) cores, $("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'))"
echo "   database: $(mib "$DB_BYTES") (pg_database_size; tasks and their indexes $(mib "$TASK_BYTES")); filled in $FILL_SECS s"
echo "   WAL archived: $(mib "$ARCHIVE_BEFORE") for the $N_TASKS tasks, $(mib "$ARCHIVE_BYTES") with the $AFTER after the backups"
for name in plain tar; do
    echo "   backup.sh ($name): $(mib "${B_BYTES[$name]}"), ${B_SECS[$name]} s (${B_DETAIL[$name]})"
done
for name in plain tar; do
    echo "   restore-pitr.sh latest ($name, replaying $AFTER tasks' WAL): ${R_SECS[$name]} s (${R_DETAIL[$name]}); $((N_TASKS + AFTER)) tasks there"
done
