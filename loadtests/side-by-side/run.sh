#!/usr/bin/env bash
# A schema change without downtime (issue 16, item 3; README, "Schema changes without downtime"):
# the current release and the next one, which adds an expand migration, run side by side on one
# PostgreSQL database behind nginx under the k6 mix, and the old release is stopped only at the end.
#
#   next release   a copy of this repository's HEAD (git archive) in NEXT_SRC, plus the two
#                  migrations of migrations/ here, numbered after the last one (postgres: a nullable
#                  column; an index built CONCURRENTLY in a `-- no-transaction` file of its own;
#                  sqlite: the same two, so the copy builds and behaves on both), checked with
#                  .ci/migration_lint.py, renamed (package tasklight-next, library tasklight_next,
#                  binary tasklight-next) and built with `cargo build --release` in the current
#                  release's target directory: its dependencies are already built there, so only
#                  its own crate compiles, and nothing of the current release is overwritten
#   the run        a fresh database, `$BIN migrate`; old instances O1 and O2 and a slot for the new
#                  N1 behind one nginx (passive health checks, proxy_next_upstream error timeout;
#                  N1's port refuses until it starts); one Redis. The k6 mix (mix.js: load.js with
#                  no failed request allowed) and writer.py (a task a 1/20 s, every acknowledged id
#                  recorded) through nginx. ~10 s after k6 starts N1 starts and applies the two
#                  migrations while O1 and O2 serve; ~20 s O1 is restarted (the old release starts
#                  on the expanded schema); ~30 s O1 and O2 get SIGTERM and drain, N1 serves the end.
#                  Each old instance is taken out of nginx (marked down, reloaded) before its SIGTERM,
#                  as a rolling update does; one that stays in a passive-check upstream can reset a
#                  POST in flight when its listener closes (seen once in CI: a 502).
#   it fails when  any k6 request failed or got an unexpected status (thresholds), the writer saw a
#                  failure, an acknowledged task is missing from the database (or one is there that
#                  was not acknowledged), the k6 creations and the rows differ, _sqlx_migrations
#                  does not hold every migration successful, the index is not valid, N1 did not
#                  start, O1 did not start again on the expanded schema, or an old instance did not
#                  exit 0 in time after SIGTERM.
#
# Environment:
#   BIN          the current release (default ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight)
#   BIN_NEXT     the next release, already built from NEXT_SRC (skips the build)
#   NEXT_SRC     where the copy is kept between runs, so cargo's build is incremental
#                (default /var/tmp/tasklight-next-src)
#   NEXT_TARGET  its cargo target directory (default: CARGO_TARGET_DIR, else
#                /var/tmp/tasklight-target, shared with the current release)
#   SBS_RATE     k6 iterations per second at the plateau (default 100)
#   PREFILL_TASKS  tasks written with SQL before the load, so the index has rows to cover
#                (default 100000; 0: none)
#   K6, NGINX    the tools (as in loadtests/drain/run.sh)
#   KEEP=1       keep the scratch directory (logs, nginx config, summaries) after a passing run
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), Redis on 127.0.0.1:6379, nginx, k6,
# curl, psql, redis-cli, python3, git, rsync, and cargo unless BIN_NEXT is given. The database, the
# Redis keys and every process it starts are removed on any exit; all traffic stays on 127.0.0.1;
# every wait is bounded. About 75 s after the build.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ME=side-by-side
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
. "$REPO/.ci/lib.sh"

NEXT_SRC=${NEXT_SRC:-/var/tmp/tasklight-next-src}
NEXT_TARGET=${NEXT_TARGET:-${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}}
DRAIN_DELAY_MS=2000
SHUTDOWN_TIMEOUT_MS=10000
EXIT_LIMIT_S=$(((DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS) / 1000 + 3))
RATE=${SBS_RATE:-100}
RAMP=5s          # load.js: ramp up, plateau, then 10 s ramp down: 45 s of load after k6's setup
DURATION=30s
USERS=10
SEED_TASKS=10
N1_AT=10         # seconds after k6 starts
RESTART_O1_AT=20
STOP_OLD_AT=30
WRITER_RATE=20
K6_LIMIT_S=120
PREFILL_TASKS=${PREFILL_TASKS:-100000}
INDEX=tasks_estimate_idx

cluster_require postgres
require git
require rsync
require flock

WORK=""
scratch_dir WORK side-by-side
# shellcheck disable=SC2317  # run on exit
keep_work() {
    if [[ $1 -ne 0 || -n ${KEEP:-} ]]; then
        SCRATCH_KEEP=1
        echo "side-by-side: logs, nginx config and summaries kept in $WORK" >&2
    fi
}
on_exit keep_work

# ---------------------------------------------------------------------------------------------------
# 1. The next release: HEAD plus the expand migrations, linted, built (incrementally) in NEXT_SRC.

mkdir -p "$NEXT_SRC" "$NEXT_TARGET"
# One run at a time prepares and builds the copy.
exec {NEXT_LOCK}>"$NEXT_SRC.lock"
flock -w 1200 "$NEXT_LOCK" || die "another run has held $NEXT_SRC.lock for 20 minutes"

STAGE=""
scratch_dir STAGE side-by-side-src
git -C "$REPO" archive HEAD | tar -x -C "$STAGE" || die "git archive HEAD of $REPO failed"
last_version() { find "$1" -maxdepth 1 -name '[0-9]*_*.sql' -printf '%f\n' | sed 's/_.*//' | sort -n | tail -n 1; }
LAST=$(last_version "$STAGE/migrations/postgres")
[[ $LAST == "$(last_version "$STAGE/migrations/sqlite")" ]] ||
    die "HEAD's postgres and sqlite migrations end at different versions ($LAST, $(last_version "$STAGE/migrations/sqlite"))"
NEW_MIGRATIONS=()  # postgres file names in the copy
for backend in postgres sqlite; do
    for f in "$HERE/migrations/$backend"/next[0-9]_*.sql; do
        b=${f##*/}
        k=${b%%_*}
        k=${k#next}
        v=$(printf '%04d' $((10#$LAST + k)))
        [[ ! -e $STAGE/migrations/$backend/${v}_${b#*_} ]] || die "the copy already has a migration $v"
        cp "$f" "$STAGE/migrations/$backend/${v}_${b#*_}"
        if [[ $backend == postgres ]]; then NEW_MIGRATIONS+=("${v}_${b#*_}"); fi
    done
done
((${#NEW_MIGRATIONS[@]} == 2)) || die "expected 2 expand migrations in $HERE/migrations/postgres, found ${#NEW_MIGRATIONS[@]}"
for m in "${NEW_MIGRATIONS[@]}"; do
    [[ -f $STAGE/migrations/sqlite/$m ]] || die "no SQLite twin of $m in $HERE/migrations/sqlite (the copy's binary embeds both folders)"
done
EXPECTED_MIGRATIONS=$(find "$STAGE/migrations/postgres" -maxdepth 1 -name '[0-9]*_*.sql' | wc -l)
log "next release: HEAD $(git -C "$REPO" rev-parse --short HEAD) + ${NEW_MIGRATIONS[*]} ($EXPECTED_MIGRATIONS migrations)"
python3 "$REPO/.ci/migration_lint.py" "$STAGE/migrations/postgres" ||
    die "the expand migrations fail the migration lint (.ci/migration_lint.py, above)"
# Another package, library and binary name: built in the shared target directory, it reuses the
# current release's dependencies and replaces none of its files.
python3 - "$STAGE" <<'PY' || die "could not rename the next release's package"
import pathlib, re, sys
stage = pathlib.Path(sys.argv[1])
cargo = stage / "Cargo.toml"
text = cargo.read_text()
text, renamed = re.subn(r'(?m)^name = "tasklight"$', 'name = "tasklight-next"', text, count=1)
assert renamed == 1, "no package name in Cargo.toml"
assert "[lib]" not in text and "[[bin]]" not in text, "Cargo.toml already names its targets"
text = text.replace("[dependencies]", '[lib]\nname = "tasklight_next"\npath = "src/lib.rs"\n\n'
                    '[[bin]]\nname = "tasklight-next"\npath = "src/main.rs"\n\n[dependencies]', 1)
cargo.write_text(text)
main = stage / "src" / "main.rs"
source = main.read_text()
assert "tasklight::cli::main()" in source, "src/main.rs no longer calls tasklight::cli::main()"
main.write_text(source.replace("tasklight::cli::main()", "tasklight_next::cli::main()"))
PY
# Only files whose content changed are rewritten, so cargo rebuilds only what it must.
rsync -rlc --delete --exclude /target "$STAGE/" "$NEXT_SRC/"
rm -rf "$STAGE"
list_remove SCRATCH_DIRS "$STAGE"

if [[ -n ${BIN_NEXT:-} ]]; then
    [[ -x $BIN_NEXT ]] || die "BIN_NEXT=$BIN_NEXT is not an executable"
    log "next release: $BIN_NEXT (BIN_NEXT given: not built)"
else
    require cargo
    BUILD_LOG=$NEXT_TARGET/side-by-side-build.log
    log "building the next release in $NEXT_SRC (CARGO_TARGET_DIR=$NEXT_TARGET; log $BUILD_LOG; its own crate only: a few minutes)"
    built_at=$(now)
    (cd "$NEXT_SRC" && CARGO_TARGET_DIR=$NEXT_TARGET cargo build --release --bin tasklight-next >"$BUILD_LOG" 2>&1) || {
        tail -n 30 "$BUILD_LOG" >&2
        die "cargo build --release of the next release failed in $NEXT_SRC (log above)"
    }
    log "built in $(since "$built_at")s"
    BIN_NEXT=$NEXT_TARGET/release/tasklight-next
fi
# A copy of its own, so that a later build cannot replace the binary under the running N1.
cp "$BIN_NEXT" "$WORK/tasklight-next"
BIN_NEXT=$WORK/tasklight-next
flock -u "$NEXT_LOCK"
exec {NEXT_LOCK}>&-
"$BIN_NEXT" --help >/dev/null || die "the next release's binary does not run"
# The same for the current release (a build elsewhere may replace it during the run).
cp "$BIN" "$WORK/tasklight-current"
BIN=$WORK/tasklight-current

# ---------------------------------------------------------------------------------------------------
# 2. Database, two old instances, nginx with a slot for the new one.

psql_run() { psql -d "$PG_SERVER/$CLUSTER_DB" -X -v ON_ERROR_STOP=1 -qtA "$@"; }

cluster_setup "$WORK" sbs- o1 o2 n1
cluster_postgres sbs
log "database $CLUSTER_DB, Redis key prefix $CLUSTER_REDIS_PREFIX, scratch $WORK"
cluster_migrate "$WORK/migrate.log"
BEFORE_MIGRATIONS=$(psql_run -c 'SELECT count(*) FROM _sqlx_migrations')
log "current release ($BIN) migrated: $BEFORE_MIGRATIONS migrations"

# launch NAME BINARY LOG: starts instance NAME of BINARY on its ports, output appended to LOG;
# LAUNCH_SECS is the time until it is live (at most 30 s). Returns 1 when it exits or is not live.
launch() {
    local name=$1 binary=$2 log_file=$3 started deadline
    started=$(now)
    BIN=$binary spawn_server "$CLUSTER_DIR" "$log_file" -i "${CLUSTER_ENV[@]}" "INSTANCE_ID=$CLUSTER_ID_PREFIX$name" \
        "TASKLIGHT_LISTEN=127.0.0.1:${API_PORT[$name]}" "TASKLIGHT_ADMIN_LISTEN=127.0.0.1:${ADMIN_PORT[$name]}"
    INST_PID[$name]=$SERVER_PID
    deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${ADMIN_PORT[$name]}/health/live" 2>/dev/null; do
        LAUNCH_SECS=$(since "$started")
        if ! alive "$SERVER_PID" || ((SECONDS >= deadline)); then return 1; fi
        sleep 0.05
    done
    LAUNCH_SECS=$(since "$started")
}
launch_or_die() {
    launch "$@" || {
        tail -n 30 "$3" >&2
        die "instance $CLUSTER_ID_PREFIX$1 ($2) did not become live: $4 (log above)"
    }
    log "instance $CLUSTER_ID_PREFIX$1 (pid ${INST_PID[$1]}, $2) live on 127.0.0.1:${API_PORT[$1]} after ${LAUNCH_SECS}s"
}
launch_or_die o1 "$BIN" "$WORK/instance-o1-1.log" "the current release on a fresh database"
launch_or_die o2 "$BIN" "$WORK/instance-o2.log" "the current release on a fresh database"

# A table with rows already, so that the index is built over something: PREFILL_TASKS tasks in a
# project of their own, written with SQL (the API would take minutes).
PREFILL_PROJECT=00000000-0000-0000-0000-000000000000
if ((PREFILL_TASKS > 0)); then
    filled_at=$(now)
    bench_data "http://127.0.0.1:${API_PORT[o1]}/api/v1" 0 || die "could not make the prefill's user and project through O1"
    PREFILL_PROJECT=$PROJECT
    psql_run -c "INSERT INTO tasks (id, project_id, title, description, status, priority, created_by, created_at, updated_at, version)
        SELECT gen_random_uuid(), p.id, 'prefill ' || g, 'a row of the side-by-side prefill', 'todo', 1 + g % 4,
               p.created_by, now(), now(), 1
        FROM projects p, generate_series(1, $PREFILL_TASKS) g WHERE p.id = '$PREFILL_PROJECT'" >/dev/null
    psql_run -c 'ANALYZE tasks'
    log "prefilled $PREFILL_TASKS tasks in $(since "$filled_at")s; table tasks: $(psql_run -c "SELECT pg_size_pretty(pg_total_relation_size('tasks'))") with its indexes"
fi

NGX=$WORK/nginx
write_nginx_conf "$NGX" "$NGX" 16 15s
start_nginx "$NGX" sbs-smoke
log "nginx (pid $NGINX_PID) on $BASE_URL over o1, o2 and n1's slot (127.0.0.1:${API_PORT[n1]}, refusing for now)"

# ---------------------------------------------------------------------------------------------------
# Load: the writer, then k6; the timeline while they run.

python3 "$HERE/writer.py" "$BASE_URL" "$WORK" --rate "$WRITER_RATE" --max-seconds 150 \
    >"$WORK/writer.log" 2>&1 &
WRITER_PID=$!
track_helper "$WRITER_PID"
deadline=$((SECONDS + 25))
until [[ -s $WORK/writer-project ]]; do
    if ! alive "$WRITER_PID" || ((SECONDS >= deadline)); then
        cat "$WORK/writer.log" >&2
        die "the writer did not get going (log above)"
    fi
    sleep 0.1
done
WRITER_PROJECT=$(<"$WORK/writer-project")
log "writer (pid $WRITER_PID): a task every $((1000 / WRITER_RATE)) ms into project $WRITER_PROJECT"

start_k6 "$WORK/k6.log" --console-output "$WORK/k6-console.log" \
    -e "BASE_URL=$BASE_URL" -e "SUMMARY_DIR=$WORK" -e "RATE=$RATE" -e "RAMP=$RAMP" -e "DURATION=$DURATION" \
    -e "USERS=$USERS" -e "SEED_TASKS=$SEED_TASKS" "$HERE/mix.js"
log "k6 (pid $K6_PID): the load.js mix at $RATE/s (ramp $RAMP, plateau $DURATION, ramp down 10s) through nginx"

at() { awk -v s="$K6_START" -v t="$(now)" 'BEGIN { printf "%.1f", t - s }'; }
sleep_until() {
    local wait_s
    wait_s=$(awk -v start="$K6_START" -v at="$1" -v t="$(now)" 'BEGIN { w = start + at - t; printf "%.3f", (w > 0 ? w : 0) }')
    sleep "$wait_s"
}
declare -A EXIT_CODE_OF=() EXIT_SECS_OF=()
# stop NAME...: SIGTERM to each at once (they drain), then a bounded wait for each exit.
stop() {
    local name
    TERM_SENT=$(now)
    for name in "$@"; do kill -TERM "${INST_PID[$name]}" 2>/dev/null || true; done
    for name in "$@"; do
        await_exit "$name" $((EXIT_LIMIT_S + 5))
        EXIT_CODE_OF[$name]=$EXIT_CODE
        EXIT_SECS_OF[$name]=$EXIT_SECS
        log "instance $CLUSTER_ID_PREFIX$name exited $EXIT_CODE after ${EXIT_SECS}s"
    done
}

# balance NAME down|up: takes an instance out of nginx's upstream, or puts it back, and reloads
# nginx, as a rolling update does before it stops an instance (Kubernetes removes the pod from the
# Service's endpoints). nginx's checks are passive: an instance stopped while still in the upstream
# may get a request on a connection it has just accepted when its listener closes, and nginx does
# not retry a POST on another instance (it may have been applied), so that request would fail.
balance() {
    local port=${API_PORT[$1]} state=$2
    if [[ $state == down ]]; then
        sed -i -E "s/^( *server 127\.0\.0\.1:$port [^;]*)(;)/\1 down\2/" "$NGX/nginx.conf"
    else
        sed -i -E "s/^( *server 127\.0\.0\.1:$port [^;]*) down;/\1;/" "$NGX/nginx.conf"
    fi
    grep -q "127.0.0.1:$port " "$NGX/nginx.conf" || die "no upstream server for $1 in $NGX/nginx.conf"
    "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" -s reload || die "nginx did not reload"
    # The old workers finish their requests and close their connections to the instance.
    sleep 1.5
    log "nginx: $1 $state"
}

sleep_until "$N1_AT"
alive "$K6_PID" || die "k6 ended before N1 was started (see $WORK/k6.log)"
N1_STARTED_AT=$(at)
N1_TABLE_ROWS=$(psql_run -c 'SELECT count(*) FROM tasks')
log "at ${N1_STARTED_AT}s: starting N1, the next release; it applies ${NEW_MIGRATIONS[*]} while O1 and O2 serve"
launch_or_die n1 "$BIN_NEXT" "$WORK/instance-n1.log" "the next release could not apply its migrations or start beside the current one"
N1_LIVE_SECS=$LAUNCH_SECS

sleep_until "$RESTART_O1_AT"
O1_RESTART_AT=$(at)
log "at ${O1_RESTART_AT}s: restarting O1 (current release) on the expanded schema"
balance o1 down
stop o1
O1_FIRST_EXIT=${EXIT_CODE_OF[o1]} O1_FIRST_SECS=${EXIT_SECS_OF[o1]}
launch_or_die o1 "$BIN" "$WORK/instance-o1-2.log" "the current release could not start on the schema the next release expanded"
O1_RESTART_SECS=$LAUNCH_SECS
balance o1 up

sleep_until "$STOP_OLD_AT"
STOP_OLD_SENT_AT=$(at)
log "at ${STOP_OLD_SENT_AT}s: O1 and O2 out of nginx, then SIGTERM; N1 serves alone from here"
balance o1 down
balance o2 down
stop o1 o2

wait_k6 "$K6_LIMIT_S" 5
log "k6 finished (exit $K6_CODE) after $(at)s"
touch "$WORK/writer-stop"
deadline=$((SECONDS + 40))
while alive "$WRITER_PID" && ((SECONDS < deadline)); do sleep 0.1; done
WRITER_CODE=0
if alive "$WRITER_PID"; then
    stop_pid "$WRITER_PID" 2
    WRITER_CODE=124
else
    wait "$WRITER_PID" || WRITER_CODE=$?
    forget_pid "$WRITER_PID"
fi

# ---------------------------------------------------------------------------------------------------
# 3. Verdict.

PROBLEMS=()
problem() { PROBLEMS+=("$*"); }

cat "$WORK/k6.log"
[[ $K6_CODE -eq 0 ]] || problem "k6 exited $K6_CODE (99: a threshold failed, e.g. a failed request or an unexpected status; see the thresholds above)"

SUMMARY=$WORK/side-by-side-summary.json
sj() { json_eval "$SUMMARY" "$1"; }
if [[ -s $SUMMARY ]]; then
    REQUESTS=$(sj 'd["tasklight"]["requests"]')
    FAILED=$(sj 'd["tasklight"]["failed"]')
    CHECK_FAILS=$(sj 'd["metrics"]["checks"]["values"]["fails"]')
    DROPPED=$(sj 'd["tasklight"]["dropped_iterations"]')
    P95=$(sj '"%.1f" % d["tasklight"]["latency_ms"]["p95"]')
    P99=$(sj '"%.1f" % d["tasklight"]["latency_ms"]["p99"]')
    MAX=$(sj '"%.1f" % d["tasklight"]["latency_ms"]["max"]')
    K6_CREATES=$(sj 'd["metrics"]["http_reqs{op:create_task}"]["values"]["count"]')
else
    problem "k6 wrote no summary ($SUMMARY)"
    REQUESTS=0 FAILED=0 CHECK_FAILS=0 DROPPED=0 P95="?" P99="?" MAX="?" K6_CREATES=0
fi
((FAILED == 0)) || problem "$FAILED k6 requests failed (http_req_failed); first ones: $(grep -m 5 UNEXPECTED "$WORK/k6-console.log" | tr '\n' ' ')"
((CHECK_FAILS == 0)) || problem "$CHECK_FAILS k6 answers had an unexpected status"
((REQUESTS > 0)) || problem "k6 sent no requests"

# The writer: no failure, every acknowledged id in the database and nothing else in its project.
[[ -s $WORK/writer-summary.json ]] || problem "the writer wrote no summary (exit $WRITER_CODE; see $WORK/writer.log)"
wj() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/writer-summary.json" "$1" 2>/dev/null || echo 0; }
W_SENT=$(wj sent) W_ACKED=$(wj acknowledged) W_FAILED=$(wj failed)
W_LATENCY=$(python3 -c 'import json, sys; l = json.load(open(sys.argv[1]))["latency_ms"]; print("p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (l["p50"], l["p99"], l["max"]))' "$WORK/writer-summary.json" 2>/dev/null || echo "latency unknown")
((WRITER_CODE == 0)) || problem "the writer exited $WRITER_CODE (see $WORK/writer.log)"
((W_FAILED == 0)) || problem "the writer saw $W_FAILED failed creations: $(head -n 3 "$WORK/writer-failed.txt" | tr '\n' ' ')"
((W_ACKED > 0)) || problem "the writer got no creation acknowledged"
sort -u "$WORK/writer-acked.txt" >"$WORK/writer-acked-sorted.txt"
W_ACKED_IDS=$(wc -l <"$WORK/writer-acked-sorted.txt")
psql_run -c "SELECT id FROM tasks WHERE project_id = '$WRITER_PROJECT'" | sort -u >"$WORK/writer-db-ids.txt"
W_ROWS=$(wc -l <"$WORK/writer-db-ids.txt")
W_MISSING=$(comm -23 "$WORK/writer-acked-sorted.txt" "$WORK/writer-db-ids.txt" | wc -l)
W_EXTRA=$(comm -13 "$WORK/writer-acked-sorted.txt" "$WORK/writer-db-ids.txt" | wc -l)
((W_ACKED_IDS == W_ACKED)) || problem "the writer recorded $W_ACKED_IDS distinct ids for $W_ACKED acknowledged creations"
((W_MISSING == 0)) || problem "$W_MISSING tasks the writer saw acknowledged are missing from the database: $(comm -23 "$WORK/writer-acked-sorted.txt" "$WORK/writer-db-ids.txt" | head -n 5 | tr '\n' ' ')"
((W_EXTRA == 0)) || problem "$W_EXTRA tasks are in the writer's project without an acknowledged 201: $(comm -13 "$WORK/writer-acked-sorted.txt" "$WORK/writer-db-ids.txt" | head -n 5 | tr '\n' ' ')"

# k6's tasks: the seeds plus every acknowledged create_task (with no failed request, each one 201).
K6_ROWS=$(psql_run -c "SELECT count(*) FROM tasks WHERE project_id NOT IN ('$WRITER_PROJECT', '$PREFILL_PROJECT')")
PREFILL_ROWS=$(psql_run -c "SELECT count(*) FROM tasks WHERE project_id = '$PREFILL_PROJECT'")
((PREFILL_ROWS == PREFILL_TASKS)) || problem "the prefill project holds $PREFILL_ROWS tasks; $PREFILL_TASKS were written"
K6_EXPECTED=$((USERS * SEED_TASKS + K6_CREATES))
((K6_ROWS == K6_EXPECTED)) ||
    problem "k6's projects hold $K6_ROWS tasks; expected $((USERS * SEED_TASKS)) seeded + $K6_CREATES acknowledged creations = $K6_EXPECTED"

# The schema: every migration recorded and successful, the column there, the index valid.
read -r MIG_COUNT MIG_OK < <(psql_run -F ' ' -c 'SELECT count(*), coalesce(bool_and(success), false) FROM _sqlx_migrations')
((MIG_COUNT == EXPECTED_MIGRATIONS)) || problem "_sqlx_migrations holds $MIG_COUNT rows; expected $EXPECTED_MIGRATIONS"
[[ $MIG_OK == t ]] || problem "_sqlx_migrations has a migration not successful: $(psql_run -F ' ' -c 'SELECT version, description FROM _sqlx_migrations WHERE NOT success' | tr '\n' ' ')"
MIG_TIMES=$(psql_run -F ' ' -c "SELECT version, description, round(execution_time / 1e6, 1) FROM _sqlx_migrations WHERE version > $((10#$LAST)) ORDER BY version" |
    awk '{ v = $1; ms = $NF; $1 = ""; $NF = ""; sub(/^ +/, ""); sub(/ +$/, ""); printf "%s%04d %s %s ms", (NR > 1 ? ", " : ""), v, $0, ms }')
MIG_TOTAL_MS=$(psql_run -c "SELECT coalesce(round(sum(execution_time) / 1e6, 1), 0) FROM _sqlx_migrations WHERE version > $((10#$LAST))")
COLUMN=$(psql_run -F ' ' -c "SELECT data_type, is_nullable FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'estimate_minutes'")
[[ $COLUMN == 'integer YES' ]] || problem "tasks.estimate_minutes is not a nullable integer column: '$COLUMN'"
INDEX_STATE=$(psql_run -F ' ' -c "SELECT i.indisvalid, i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = '$INDEX'")
[[ $INDEX_STATE == 't t' ]] || problem "index $INDEX is not valid and ready (pg_index indisvalid, indisready: '${INDEX_STATE:-no such index}')"

# The old instances: O1 restarted (exit 0, then live again on the expanded schema), both drained.
EXIT_CAP=$((EXIT_LIMIT_S + 1))
[[ $O1_FIRST_EXIT == 0 ]] || problem "O1 exited $O1_FIRST_EXIT on its restart's SIGTERM"
for name in o1 o2; do
    [[ ${EXIT_CODE_OF[$name]} == 0 ]] || problem "instance $name exited ${EXIT_CODE_OF[$name]} after the final SIGTERM"
    awk -v s="${EXIT_SECS_OF[$name]}" -v l="$EXIT_CAP" 'BEGIN { exit !(s <= l) }' ||
        problem "instance $name took ${EXIT_SECS_OF[$name]}s to exit (limit ${EXIT_CAP}s)"
done
served() { grep -c '"tasklight::access"' "$1" 2>/dev/null || true; }
SERVED_O1A=$(served "$WORK/instance-o1-1.log") SERVED_O1B=$(served "$WORK/instance-o1-2.log")
SERVED_O2=$(served "$WORK/instance-o2.log") SERVED_N1=$(served "$WORK/instance-n1.log")
((SERVED_N1 > 0)) || problem "N1 served no request: the releases did not run side by side"
((SERVED_O1B > 0)) || problem "O1 served no request after its restart on the expanded schema"
ERROR_LINES=$(cat "$WORK"/instance-*.log | grep -c '"level":"ERROR"' || true)
((ERROR_LINES == 0)) || problem "$ERROR_LINES ERROR lines in the instances' logs: $(grep -h '"level":"ERROR"' "$WORK"/instance-*.log | head -n 3 | cut -c 1-300 | tr '\n' ' ')"
nginx_counts "$NGX"
((NGX_5XX == 0)) || problem "nginx answered $NGX_5XX requests with 5xx"

echo
echo "=== side by side: the current release and the next (expand migrations) on one PostgreSQL database"
printf '  timeline            N1 started at %ss, live after %ss; O1 restarted at %ss (exit %s after %ss, live again after %ss); SIGTERM to O1 and O2 at %ss (exit %s after %ss, %s after %ss)\n' \
    "$N1_STARTED_AT" "$N1_LIVE_SECS" "$O1_RESTART_AT" "$O1_FIRST_EXIT" "$O1_FIRST_SECS" "$O1_RESTART_SECS" \
    "$STOP_OLD_SENT_AT" "${EXIT_CODE_OF[o1]}" "${EXIT_SECS_OF[o1]}" "${EXIT_CODE_OF[o2]}" "${EXIT_SECS_OF[o2]}"
printf '  migrations          N1 applied %s (%s ms in all, execution_time of _sqlx_migrations) on %s tasks, start to live %ss; %s rows in _sqlx_migrations (all successful: %s); %s valid: %s\n' \
    "$MIG_TIMES" "$MIG_TOTAL_MS" "$N1_TABLE_ROWS" "$N1_LIVE_SECS" "$MIG_COUNT" "$MIG_OK" "$INDEX" "${INDEX_STATE:-missing}"
printf '  k6                  %s requests, %s failed, %s unexpected statuses, %s dropped iterations; p95 %s ms, p99 %s ms, max %s ms\n' \
    "$REQUESTS" "$FAILED" "$CHECK_FAILS" "$DROPPED" "$P95" "$P99" "$MAX"
printf '  writes (writer)     %s sent, %s acknowledged, %s failed (%s); database: %s rows in its project, %s missing, %s unacknowledged\n' \
    "$W_SENT" "$W_ACKED" "$W_FAILED" "$W_LATENCY" "$W_ROWS" "$W_MISSING" "$W_EXTRA"
printf '  writes (k6)         %s seeded + %s acknowledged creations = %s; database: %s rows in its projects\n' \
    "$((USERS * SEED_TASKS))" "$K6_CREATES" "$K6_EXPECTED" "$K6_ROWS"
printf '  served              O1 %s + %s (before + after its restart), O2 %s, N1 %s (access log lines)\n' \
    "$SERVED_O1A" "$SERVED_O1B" "$SERVED_O2" "$SERVED_N1"
printf '  nginx               %s requests passed to another instance, %s answered 5xx, %s [error] lines (refused connects to N1 before it started and to O1/O2 once stopped)\n' \
    "$NGX_RETRIED" "$NGX_5XX" "$NGX_ERRORS"

if ((${#PROBLEMS[@]} > 0)); then
    echo
    echo "=== FAILED"
    printf '  - %s\n' "${PROBLEMS[@]}"
    exit 1
fi
echo "=== PASSED: no request failed and no acknowledged write was lost while the current and the next release ran side by side on the expanded schema"
