#!/usr/bin/env bash
# The test of read replicas (issue 16 item 2; CI step 7): two instances of the service on a
# PostgreSQL primary and a real streaming replica of it (DATABASE_READ_URL), sharing Redis.
#
# Usage: BIN=/path/to/tasklight deploy/postgres/check-replica.sh
#
# It runs its own PostgreSQL clusters from PG_BIN (default /usr/lib/postgresql/15/bin; Debian's
# postgresql-15) in a scratch directory, on free ports of 127.0.0.1 with their unix sockets in the
# scratch directory; as root they run as the OS user `postgres`. Redis is REDIS_SERVER of .ci/lib.sh
# (127.0.0.1:6379) under a key prefix of its own, deleted on exit. k6 is found like
# loadtests/run-local.sh finds it (K6, the PATH, or CI's venv). Everything it starts is stopped on
# exit. REPLICA_KEEP=1 keeps the scratch directory. The HTTP side is replica-check.py.
#
#   1. initdb a primary (wal_level=replica, max_wal_senders, hot standby), CREATE DATABASE
#      tasklight, `tasklight migrate`; pg_basebackup -R (with a replication slot) makes the replica,
#      which applies WAL recovery_min_apply_delay = 1500ms late (so that staleness is certain) with
#      hot_standby_feedback = on; it starts and must stream (pg_stat_replication on the primary).
#   2. Instances A and B (INSTANCE_ID a, b) of `tasklight serve`: DATABASE_URL the primary,
#      DATABASE_READ_URL the replica, REDIS_URL and a unique TASKLIGHT_REDIS_KEY_PREFIX, one
#      JWT_SECRET, generous quotas. User X owns a project; user Y is made a member of it by X.
#   3. (a) read-your-writes across instances: X creates a task on A and at once lists the project's
#          tasks and "my tasks" on B: the task is there, REPLICA_ROUNDS (20) rounds, all must pass;
#          then 5 comments (the task's comment list on B) and 5 projects (X's project list on B),
#          the same way. B counts X's task-list and comment reads primary/own_write. (Whether "my
#          tasks" and the project list are routed at all is printed as a note.)
#      (b) staleness is real: Y (who has not written) lists on B right after X's write on A: at
#          least one of 5 first reads lacks the task, and the task is there within 5 s; B's
#          tasklight_db_reads_total{target="replica"} grew.
#      (c) idle 2 s: tasklight_db_replica_lag_seconds between 0 and 10 and tasklight_db_replica_up
#          1 on A and B; readiness 200 with checks.replica.status "up".
#      (d) the k6 mix (loadtests/k6/load.js, RATE REPLICA_K6_RATE=100 per instance) against A and
#          against B for 20 s; the lag gauge of both (and pg_stat_replication.replay_lag) sampled
#          every second: max and median printed.
#      (e) A and B restarted with TASKLIGHT_READ_MAX_LAG_MS=500: while X writes, B's gauge goes
#          above 0.5 s; then Y's read on B right after X's write on A has the task, 5 rounds, counted
#          primary/lagging.
#      (f) the replica stopped: Y's and X's reads on B right after X's write answer 200 with the
#          task; tasklight_db_replica_up becomes 0 (15 s at most); then reads are counted
#          primary/down; readiness 200 with checks.replica.status "down".
#   Every check runs (a failed one does not stop the rest, unless nothing after it could work);
#   the summary lists the failed ones and the figures, and the exit status is 1 if any failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ME=check-replica
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
. "$REPO/.ci/lib.sh"
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

require_bin
require python3
require curl
require redis-cli
pg_bin initdb pg_ctl postgres psql pg_basebackup
find_k6
[[ $(timeout 5 redis-cli -u "$REDIS_SERVER" ping 2>/dev/null) == PONG ]] || die "Redis is not reachable at $REDIS_SERVER"
pg_os_user postgres
ROUNDS=${REPLICA_ROUNDS:-20}
K6_RATE=${REPLICA_K6_RATE:-100}
K6_SECONDS=${REPLICA_K6_SECONDS:-20}
APPLY_DELAY=1500ms

STARTED=$(now)
pg_scratch replica
[[ -z ${REPLICA_KEEP:-} ]] || SCRATCH_KEEP=1
PRIMARY=$DIR/primary REPLICA=$DIR/replica
pg_owned_dir 0700 "$REPLICA" # pg_basebackup writes into it
read -r PRIMARY_PORT REPLICA_PORT API_A ADMIN_A API_B ADMIN_B < <(free_ports 6)
REDIS_PREFIX="tasklight-replica-$$_$RANDOM"
REDIS_PREFIXES+=("$REDIS_PREFIX")

# On exit k6 and the instances first (the helpers and servers of .ci/lib.sh), then the clusters;
# after a failure the end of these logs.
PG_EXIT_LOGS=("$DIR/instance-a.log" "$DIR/instance-b.log" "$PRIMARY.log" "$REPLICA.log")
on_exit pg_exit_hook

# --- 1. The primary, the schema, the replica. -------------------------------------------------------
log "primary: initdb in $PRIMARY, port $PRIMARY_PORT"
# initdb's pg_hba.conf trusts replication connections from 127.0.0.1 already.
pg_initdb "$PRIMARY" "$PRIMARY_PORT" "$SOCK" check-replica.sh "wal_level = replica" "max_wal_senders = 4" \
    "max_replication_slots = 4" "hot_standby = on" "max_connections = 100"
pg_start "$PRIMARY" "the primary"
psql_at "$PRIMARY_PORT" postgres -c 'CREATE DATABASE tasklight'

PRIMARY_URL=postgres://postgres@127.0.0.1:$PRIMARY_PORT/tasklight
REPLICA_URL=postgres://postgres@127.0.0.1:$REPLICA_PORT/tasklight
SECRET=$(random_secret)
BASE_ENV=(-i "PATH=$PATH" "DATABASE_URL=$PRIMARY_URL" "JWT_SECRET=$SECRET" "RUST_LOG=warn"
    "TASKLIGHT_RATE_LIMIT_USER=$GENEROUS_QUOTA" "TASKLIGHT_RATE_LIMIT_IP=$GENEROUS_QUOTA"
    "TASKLIGHT_RATE_LIMIT_AUTH_IP=$GENEROUS_QUOTA" "TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=$GENEROUS_QUOTA"
    "TASKLIGHT_DRAIN_DELAY_MS=0")
pg_migrate "$DIR" "${BASE_ENV[@]}"
log "primary: database tasklight migrated"

# pg_basebackup writes into the empty directory made above, the postgres user's.
log "replica: pg_basebackup -R from the primary into $REPLICA, port $REPLICA_PORT"
as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$REPLICA" -R -X stream \
    -C -S tasklight_replica -c fast >"$DIR/basebackup.log" 2>&1 ||
    die "pg_basebackup failed: $(tail -n 5 "$DIR/basebackup.log")"
if ! grep -q primary_conninfo "$REPLICA/postgresql.auto.conf" || [[ ! -f $REPLICA/standby.signal ]]; then
    die "pg_basebackup -R wrote no standby.signal or primary_conninfo"
fi
# The copied postgresql.conf has the primary's lines; these come later and win.
pg_conf "$REPLICA" "check-replica.sh: the replica" "port = $REPLICA_PORT" "cluster_name = 'tasklight_replica'" \
    "hot_standby = on" "hot_standby_feedback = on" "recovery_min_apply_delay = '$APPLY_DELAY'"
pg_start "$REPLICA" "the replica"
STREAMING=""
streaming() {
    STREAMING=$(psql_at "$PRIMARY_PORT" postgres -c \
        "SELECT state FROM pg_stat_replication WHERE application_name = 'tasklight_replica'")
    [[ $STREAMING == streaming ]]
}
wait_until 30 streaming || die "the replica does not stream within 30 s (pg_stat_replication: '$STREAMING')"
[[ $(psql_at "$REPLICA_PORT" postgres -c 'SELECT pg_is_in_recovery()') == t ]] || die "the replica is not in recovery"
log "replica streaming (pg_stat_replication on the primary), recovery_min_apply_delay $APPLY_DELAY, hot_standby_feedback on"

# --- 2. Instances A and B. --------------------------------------------------------------------------
INST_ENV=("${BASE_ENV[@]}" "DATABASE_READ_URL=$REPLICA_URL" "REDIS_URL=$REDIS_SERVER"
    "TASKLIGHT_REDIS_KEY_PREFIX=$REDIS_PREFIX")
PID_A="" PID_B=""
# start_instances [VAR=value...]: A and B with INST_ENV and these settings, live.
start_instances() {
    start_server "instance a" "$DIR" "$DIR/instance-a.log" "$API_A" "$ADMIN_A" "${INST_ENV[@]}" INSTANCE_ID=a "$@"
    PID_A=$SERVER_PID
    start_server "instance b" "$DIR" "$DIR/instance-b.log" "$API_B" "$ADMIN_B" "${INST_ENV[@]}" INSTANCE_ID=b "$@"
    PID_B=$SERVER_PID
    log "instances a (pid $PID_A, 127.0.0.1:$API_A, admin $ADMIN_A) and b (pid $PID_B, 127.0.0.1:$API_B, admin $ADMIN_B)${1:+ with $*}"
}
stop_instances() {
    stop_server "$PID_A"
    stop_server "$PID_B"
}
start_instances

RESULTS=$DIR/results.json
CHECK=(python3 "$HERE/replica-check.py" --results "$RESULTS" --state "$DIR/state.json"
    --a "http://127.0.0.1:$API_A" --b "http://127.0.0.1:$API_B"
    --admin-a "http://127.0.0.1:$ADMIN_A" --admin-b "http://127.0.0.1:$ADMIN_B")
"${CHECK[@]}" setup || die "could not make the users and the project (above)"

# --- 3. The checks. ---------------------------------------------------------------------------------
# (a), (b), (c). A failed check is recorded in RESULTS; the summary decides the exit status.
"${CHECK[@]}" rw --rounds "$ROUNDS" --apply-delay "${APPLY_DELAY%ms}e-3" || die "replica-check.py rw crashed (above)"

# (d) The k6 mix against A and against B, the lag sampled every second.
log "(d) k6 ($K6) loadtests/k6/load.js, $K6_RATE requests/s against each instance, ${K6_SECONDS} s"
mkdir -p "$DIR/k6-a" "$DIR/k6-b"
K6_PIDS=()
for name in a b; do
    port=$API_A
    [[ $name == b ]] && port=$API_B
    # One ramp second, then the plateau; stopped (SIGINT: graceful, with its summary) after K6_SECONDS.
    start_k6 "$DIR/k6-$name.log" -e "BASE_URL=http://127.0.0.1:$port" -e "SUMMARY_DIR=$DIR/k6-$name" \
        -e "RATE=$K6_RATE" -e RAMP=1s -e "DURATION=$((K6_SECONDS + 30))s" "$REPO/loadtests/k6/load.js"
    K6_PIDS+=("$K6_PID")
done
"${CHECK[@]}" sample --seconds "$K6_SECONDS" --psql "$PG_BIN/psql" --primary-port "$PRIMARY_PORT" ||
    die "replica-check.py sample crashed (above)"
for pid in "${K6_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
for pid in "${K6_PIDS[@]}"; do
    wait_until 30 not alive "$pid" || log "k6 (pid $pid) still running 30 s after SIGINT: stopping it"
    stop_pid "$pid" 5
done
"${CHECK[@]}" k6 "$DIR/k6-a/load-summary.json" "$DIR/k6-b/load-summary.json" ||
    die "replica-check.py k6 crashed (above)"

# (e) The replica is too far behind for the instances.
log "(e) restart A and B with TASKLIGHT_READ_MAX_LAG_MS=500"
stop_instances
start_instances TASKLIGHT_READ_MAX_LAG_MS=500
"${CHECK[@]}" lagging || die "replica-check.py lagging crashed (above)"

# (f) The replica stops; the instances keep the default lag limit.
stop_instances
start_instances
sleep 2 # their first look at the replica, up and streaming
log "(f) stop the replica (pg_ctl stop -m fast)"
pg_stop "$REPLICA"
[[ ! -f $REPLICA/postmaster.pid ]] || die "the replica did not stop"
"${CHECK[@]}" down || die "replica-check.py down crashed (above)"

echo
echo "== read replicas: $(since "$STARTED") s; primary $PRIMARY_URL, replica $REPLICA_URL (recovery_min_apply_delay $APPLY_DELAY)"
"${CHECK[@]}" summary || die "some checks failed (FAIL lines above)"
