#!/usr/bin/env bash
# The test of backup.sh and restore-pitr.sh (CI step 7): writes under load, base backup, more
# writes, a target time T, more writes; then restores to T and to the end of the archive, into
# new clusters, and compares the tasks row for row with what the service acknowledged.
#
# Usage: BIN=/path/to/tasklight deploy/postgres/check-pitr.sh
#
# It runs its own PostgreSQL clusters from PG_BIN (default /usr/lib/postgresql/15/bin; Debian's
# postgresql-15) in a scratch directory, on free ports of 127.0.0.1 with their unix sockets in the
# scratch directory; as root they run as the OS user `postgres`. It never touches another server.
# Everything it starts is stopped on exit. PITR_KEEP=1 keeps the scratch directory.
#
#   1. initdb a primary with wal_level=replica, archive_mode=on and the archive_command of
#      README.md (into DIR/archive); CREATE DATABASE tasklight; `tasklight migrate`; `tasklight
#      serve` on it.
#   2. pitr_check.py write: 4 threads creating tasks through the API, each acknowledged task (id,
#      title, project, ..., when the request was sent, when the 201 arrived) in writes.jsonl.
#   3. After 50 acknowledged tasks: backup.sh (plain), then backup.sh --tar, each verified.
#      Writing goes on.
#   4. About 2 s later: T = the clock (microseconds), then SELECT pg_switch_wal(); writing goes on
#      3 s more. Then the writer stops (requests in flight finish), the service stops, the last WAL
#      segment is switched and archived, and the primary stops: nothing of it is used any more.
#   5. restore-pitr.sh --target T from the tar backup into a new cluster; its tasks are compared with pitr_check.py's
#      rule: acknowledged before T (ack < T) must be there, equal (id, title, project, creator,
#      created_at, version); sent at or after T must not; in flight at T (sent < T <= ack) may be
#      either (counted); nothing else may be there; no request may have failed.
#   6. restore-pitr.sh --target latest from the plain backup into another: every acknowledged task, and nothing else.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ME=check-pitr
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
. "$REPO/.ci/lib.sh"
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

require_bin
require python3
pg_bin initdb pg_ctl postgres psql pg_basebackup pg_verifybackup pg_controldata
export PG_BIN # backup.sh and restore-pitr.sh use the same
pg_os_user postgres

STARTED=$(now)
pg_scratch pitr
[[ -z ${PITR_KEEP:-} ]] || SCRATCH_KEEP=1
PRIMARY=$DIR/primary ARCHIVE=$DIR/archive
pg_owned_dir 0700 "$ARCHIVE"
read -r PG_PORT API_PORT ADMIN_PORT PORT_T PORT_LATEST < <(free_ports 5)

# On exit the writer and the service first (the helpers and servers of .ci/lib.sh), then the
# clusters; after a failure the end of these logs (and of the restored clusters').
PG_EXIT_LOGS=("$DIR/service.log" "$DIR/writer.log" "$PRIMARY.log")
on_exit pg_exit_hook

# --- 1. The primary, the schema, the service. ------------------------------------------------------
log "primary: initdb in $PRIMARY, port $PG_PORT, WAL archived to $ARCHIVE"
pg_initdb "$PRIMARY" "$PG_PORT" "$SOCK" check-pitr.sh "wal_level = replica" "archive_mode = on" \
    "archive_command = '$(pg_archive_command "$ARCHIVE")'" "max_wal_senders = 4"
pg_start "$PRIMARY" "the primary"
psql_at "$PG_PORT" postgres -c 'CREATE DATABASE tasklight'

DB_URL=postgres://postgres@127.0.0.1:$PG_PORT/tasklight
SECRET=$(random_secret)
SERVICE_ENV=(-i "PATH=$PATH" "DATABASE_URL=$DB_URL" "JWT_SECRET=$SECRET" "INSTANCE_ID=pitr-check" "RUST_LOG=warn"
    "TASKLIGHT_RATE_LIMIT_USER=$GENEROUS_QUOTA" "TASKLIGHT_RATE_LIMIT_IP=$GENEROUS_QUOTA"
    "TASKLIGHT_RATE_LIMIT_AUTH_IP=$GENEROUS_QUOTA" "TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=$GENEROUS_QUOTA"
    "TASKLIGHT_DRAIN_DELAY_MS=0")
pg_migrate "$DIR" "${SERVICE_ENV[@]}"
start_server "tasklight" "$DIR" "$DIR/service.log" "$API_PORT" "$ADMIN_PORT" "${SERVICE_ENV[@]}"
SERVICE_PID=$SERVER_PID
log "service (pid $SERVICE_PID) on 127.0.0.1:$API_PORT, database $DB_URL"

# --- 2. The writer. ---------------------------------------------------------------------------------
WRITES=$DIR/writes.jsonl
: >"$WRITES"
python3 "$HERE/pitr_check.py" write "http://127.0.0.1:$API_PORT" "$WRITES" --threads 4 >"$DIR/writer.log" 2>&1 &
WRITER_PID=$!
track_helper "$WRITER_PID"
acks() { grep -c '"kind": "task"' "$WRITES" || true; }
# wait_acks N SECONDS: until N tasks are acknowledged in all.
wait_acks() {
    local deadline=$((SECONDS + $2))
    while (($(acks) < $1)); do
        alive "$WRITER_PID" || die "the writer exited (writer.log below)"
        ((SECONDS < deadline)) || die "fewer than $1 tasks acknowledged after $2 s ($(acks))"
        sleep 0.1
    done
}
wait_acks 50 30
log "writer (pid $WRITER_PID): $(acks) tasks acknowledged"

# --- 3. Two base backups, plain and --tar, while the writer writes. --------------------------------
# take_backup NAME [--tar]: sets BACKUP_DIR[NAME], BACKUP_END[NAME] (the clock when backup.sh
# returned: every write sent after it is in the WAL archive only), BACKUP_SIZE[NAME], BACKUP_SECS[NAME].
declare -A BACKUP_DIR=() BACKUP_END=() BACKUP_SIZE=() BACKUP_SECS=()
take_backup() {
    local name=$1 out=$DIR/backup-$1.out
    shift
    "$HERE/backup.sh" "$@" "$DIR/backups" -h 127.0.0.1 -p "$PG_PORT" -U postgres >"$out" 2>&1 || {
        cat "$out" >&2
        die "backup.sh $* failed"
    }
    BACKUP_END[$name]=$EPOCHREALTIME
    sed 's/^/    /' "$out"
    BACKUP_DIR[$name]=$(sed -n 's/^backup: //p' "$out")
    BACKUP_SIZE[$name]=$(sed -n 's/^size: //p' "$out")
    BACKUP_SECS[$name]=$(sed -n 's/^seconds: \([0-9.]*\).*/\1/p' "$out")
    [[ -d ${BACKUP_DIR[$name]} ]] || die "backup.sh $* printed no backup directory"
}
take_backup plain
take_backup tar --tar
ACKS_AT_BACKUP=$(acks)
log "base backups done, $ACKS_AT_BACKUP tasks acknowledged so far"

# --- 4. The target time, more writes, stop everything. ----------------------------------------------
wait_acks $((ACKS_AT_BACKUP + 100)) 30
sleep 1
T_EPOCH=$EPOCHREALTIME
T_ISO=$(date -u -d "@$T_EPOCH" '+%Y-%m-%d %H:%M:%S.%6N+00')
ACKS_AT_T=$(acks)
psql_at "$PG_PORT" postgres -c 'SELECT pg_switch_wal()' >/dev/null
log "T = $T_ISO (about $ACKS_AT_T tasks acknowledged by then; the exact counts come with the comparison)"
wait_acks $((ACKS_AT_T + 100)) 30
sleep 2

kill -TERM "$WRITER_PID"
wait_until 30 not alive "$WRITER_PID" || die "the writer did not stop within 30 s of SIGTERM"
wait "$WRITER_PID" || die "the writer failed (writer.log below)"
forget_pid "$WRITER_PID"
stop_server "$SERVICE_PID"
ACKS_TOTAL=$(acks)
log "writer and service stopped: $ACKS_TOTAL tasks acknowledged in all"

# The last segment holds the last commits: switch and wait until it is in the archive.
pg_archive_current "$PG_PORT" "$ARCHIVE" 30
PRIMARY_TASKS=$(psql_at "$PG_PORT" tasklight -c 'SELECT count(*) FROM tasks')
pg_stop "$PRIMARY"
ARCHIVED=$(find "$ARCHIVE" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' | wc -l)
log "primary stopped ($PRIMARY_TASKS tasks); $ARCHIVED WAL segments archived, the last $LAST_SEGMENT"
((PRIMARY_TASKS == ACKS_TOTAL)) || die "the primary has $PRIMARY_TASKS tasks but $ACKS_TOTAL were acknowledged"

# --- 5 and 6. Restore, compare. ---------------------------------------------------------------------
FAILED=0
# restore_and_compare NAME BACKUP PORT TARGET COMPARE_TARGET
restore_and_compare() {
    local name=$1 backup=$2 port=$3 target=$4 compare_target=$5 pgdata=$DIR/restored-$1 out=$DIR/restore-$1.out
    pg_track "$pgdata"
    PG_EXIT_LOGS+=("$pgdata.log")
    log "restore the $backup backup to $target (restore-pitr.sh, port $port)"
    "$HERE/restore-pitr.sh" --backup "${BACKUP_DIR[$backup]}" --archive "$ARCHIVE" --target "$target" \
        --pgdata "$pgdata" --port "$port" --socket-dir "$SOCK" --timeout 90 >"$out" 2>&1 || {
        cat "$out" >&2
        die "restore-pitr.sh to $target failed"
    }
    sed 's/^/    /' "$out"
    RESTORE_SECS[$name]=$(sed -n 's/^seconds: \([0-9.]*\).*/\1/p' "$out")
    [[ $(psql_at "$port" postgres -c 'SELECT pg_is_in_recovery()') == f ]] || die "the $name cluster is still in recovery"
    psql_at "$port" tasklight -c "SET TimeZone = 'UTC'" -c "SELECT coalesce(json_agg(json_build_object(
        'id', id, 'title', title, 'project_id', project_id, 'created_by', created_by,
        'created_at', created_at, 'version', version) ORDER BY id), '[]') FROM tasks" >"$DIR/rows-$name.json"
    log "compare ($name):"
    python3 "$HERE/pitr_check.py" compare "$WRITES" "$DIR/rows-$name.json" --target "$compare_target" \
        --backup-end "${BACKUP_END[$backup]}" >"$DIR/compare-$name.out" 2>&1 || FAILED=1
    sed 's/^/    /' "$DIR/compare-$name.out"
    ROWS[$name]=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$DIR/rows-$name.json")
    pg_stop "$pgdata"
}
declare -A RESTORE_SECS=() ROWS=()
# To T from the compressed backup, to the end from the plain one: both formats restore.
restore_and_compare t tar "$PORT_T" "$T_ISO" "$T_EPOCH"
restore_and_compare latest plain "$PORT_LATEST" latest latest

echo
echo "== point-in-time recovery: $( ((FAILED)) && echo FAILED || echo passed) in $(since "$STARTED") s"
echo "   acknowledged tasks: $ACKS_TOTAL, none failed"
echo "   base backups: plain ${BACKUP_SIZE[plain]} in ${BACKUP_SECS[plain]} s, tar.gz ${BACKUP_SIZE[tar]} in ${BACKUP_SECS[tar]} s (pg_basebackup + pg_verifybackup); $ARCHIVED WAL segments archived"
echo "   restore (tar) to T:        ${ROWS[t]} rows compared, ${RESTORE_SECS[t]} s"
echo "   restore (plain) to latest: ${ROWS[latest]} rows compared, ${RESTORE_SECS[latest]} s"
((FAILED == 0)) || die "the restored tasks are not what the service acknowledged (PROBLEM lines above)"
