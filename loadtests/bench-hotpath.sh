#!/usr/bin/env bash
# The hot path, as ratios to baselines measured in the same run (issue 12's targets):
#   bare poem   the poem version the service uses answering GET / with "hello" (loadtests/bare-poem)
#   task        GET /api/v1/tasks/{id}, served from the cache         (SQLite; telemetry off and all)
#   me          GET /api/v1/users/me                                   (SQLite; telemetry off and all)
#   list        GET /api/v1/projects/{id}/tasks?limit=20, uncached     (PostgreSQL; all), with the
#               default pool of 10 connections and with as many as pgbench's clients
#   patch       PATCH /api/v1/tasks/{id} with If-Match, a real change  (PostgreSQL; all; that pool)
#   pgbench -S  / pgbench -N, prepared, the same number of clients     (the same PostgreSQL)
# "all" is JSON logs to a file and every request traced (OTEL_TRACES_SAMPLER=always_on) to the OTLP
# sink in loadtests/otlp-sink. The servers run on CPU 0; wrk, pgbench and the sink on CPU 1
# (PostgreSQL itself is the machine's server and is not pinned). Configurations alternate round by
# round; the figures are medians. Rate limits are raised so that the limiter allows everything, but
# it still decides on every request. Each SQLite server with telemetry all must have counted as
# many requests in its HTTP histogram as it wrote access lines with the four ids and as the sink
# received server spans, with nothing counted as dropped; otherwise the script fails.
#
# Usage: loadtests/bench-hotpath.sh     (ROUNDS=3 DURATION=8s CONNECTIONS=64 by default; CI runs
#                                        ROUNDS=1 DURATION=3s and prints the same table)
# It builds the release binary, the sink and bare poem unless BIN, SINK and BARE name them.
# Needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres): it makes two databases and drops them.
# Traffic goes to 127.0.0.1 only; every run is bounded by DURATION.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ME=bench-hotpath
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$ROOT/.ci/lib.sh"
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}

require wrk "apt-get install wrk"
require taskset util-linux
require pgbench "apt-get install postgresql-client"
require psql "apt-get install postgresql-client"
[ "$(nproc)" -ge 2 ] || die "needs two cores to pin servers and load generators apart"

build() { # DIR TARGET_SUBDIR: cargo build --release of the crate in DIR
    echo "== building $1 (release)"
    (cd "$ROOT/$1" && CARGO_TARGET_DIR=$TARGET$2 cargo build --release --quiet)
}
[[ -n ${BIN:-} ]] || build . ""
[[ -n ${SINK:-} ]] || build loadtests/otlp-sink /otlp-sink
[[ -n ${BARE:-} ]] || build loadtests/bare-poem /bare-poem
BIN=${BIN:-$TARGET/release/tasklight}
SINK=${SINK:-$TARGET/otlp-sink/release/otlp-sink}
BARE=${BARE:-$TARGET/bare-poem/release/bare-poem}

read -r PORT ADMIN_PORT SINK_PORT BARE_PORT < <(free_ports 4)
BASE="http://127.0.0.1:$PORT/api/v1"
WORK=""
scratch_dir WORK bench
on_exit "" ""

bench_env bench
SERVER_WRAPPER=(taskset -c 0)

# bench_server DATABASE_URL off|all [ENV_ARG...]: the service on CPU 0 with that telemetry.
bench_server() {
    local url=$1 telemetry=$2
    shift 2
    telemetry_env "$telemetry" "$SINK_PORT"
    LIVE_TIMEOUT_S=20 start_server "server ($telemetry)" "$WORK" "$WORK/server-$telemetry.log" "$PORT" \
        "$ADMIN_PORT" "${BENCH_ENV[@]}" "DATABASE_URL=$url" "${TELEMETRY_ENV[@]}" "$@"
}

# psql_vacuum DB: VACUUM ANALYZE of every table of DB.
psql_vacuum() { psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$1" -c 'VACUUM ANALYZE' >/dev/null; }

declare -A results
# record KEY VALUE: one round's figure.
record() { results[$1]="${results[$1]:-} $2"; }

# run_wrk KEY URL [WRK_ARG...]: a 2 s warm-up, then DURATION measured; records requests/s and
# dies on any non-2xx answer or socket error.
run_wrk() {
    local key=$1 url=$2 out
    shift 2
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null
    out=$WORK/wrk-$key-$ROUND.txt
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" "$url" >"$out"
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        cat "$out" >&2
        die "$key: failed requests (above)"
    fi
    local rps
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    record "$key" "$rps"
    printf 'round %d  %-10s %10.0f req/s\n' "$ROUND" "$key" "$rps"
}

# run_pgbench KEY DB PGBENCH_ARG...: DURATION of pgbench with CONNECTIONS clients on CPU 1.
run_pgbench() {
    local key=$1 db=$2 tps
    shift 2
    tps=$(taskset -c 1 pgbench -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -M prepared -c "$CONNECTIONS" -j 1 \
        -T "${DURATION%s}" -n "$@" "$db" 2>&1 | awk '/^tps = / {print $3}')
    [[ -n $tps ]] || die "$key: pgbench printed no tps"
    record "$key" "$tps"
    printf 'round %d  %-10s %10.0f tps\n' "$ROUND" "$key" "$tps"
}

taskset -c 1 "$SINK" "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
track_helper "$SINK_PID"

# sink_counts: the sink's counts so far (it prints them on SIGUSR1); sets SPANS and SERVER_SPANS.
sink_counts() {
    local before after=0 i
    before=$(grep -c 'spans received' "$WORK/sink.log" || true)
    kill -USR1 "$SINK_PID"
    for ((i = 0; i < 50; i++)); do
        after=$(grep -c 'spans received' "$WORK/sink.log" || true)
        ((after > before)) && break
        sleep 0.1
    done
    ((after > before)) || die "the OTLP sink did not report its counts"
    last_sink_counts
}

# last_sink_counts: SPANS and SERVER_SPANS from the last counts the sink printed.
last_sink_counts() {
    local line
    line=$(grep 'spans received' "$WORK/sink.log" | tail -n 1)
    SPANS=$(sed -E 's/^spans received: ([0-9]+).*/\1/' <<<"$line")
    SERVER_SPANS=$(sed -E 's/.*server spans: ([0-9]+)\).*/\1/' <<<"$line")
}

# access_lines LOG: access lines in LOG carrying the request id, trace id, span id and instance id.
access_lines() {
    awk 'index($0, "tasklight::access") && index($0, "\"request_id\":\"") && index($0, "\"trace_id\":\"") &&
        index($0, "\"span_id\":\"") && index($0, "\"instance_id\":\"") {n++} END {print n + 0}' "$1" 2>/dev/null ||
        echo 0
}

# metric_sum PATTERN: the sum of the running server's samples whose name matches PATTERN (awk).
metric_sum() {
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v p="$1" '$1 ~ p {s += $NF} END {printf "%d", s}'
}

CHECKED=0
# nothing_dropped LINES_BEFORE SERVER_SPANS_BEFORE REQUESTS DROPPED: after a server with
# telemetry all stopped (its last spans flushed), its requests (the HTTP histogram's count), its
# access lines with the four ids and its server spans at the sink must be equal, and nothing
# counted as dropped; dies otherwise.
nothing_dropped() {
    local lines spans
    lines=$(($(access_lines "$WORK/server-all.log") - $1))
    sink_counts
    spans=$((SERVER_SPANS - $2))
    if ((lines != $3 || spans != $3 || $4 != 0)); then
        die "telemetry dropped something: $3 requests, $lines access lines with the four ids, $spans server spans, $4 dropped"
    fi
    CHECKED=$((CHECKED + $3))
    printf 'round %d  nothing dropped: %d requests = %d access lines = %d server spans; 0 dropped\n' \
        "$ROUND" "$3" "$lines" "$spans"
}

echo "== preparing: SQLite, PostgreSQL (the service's database and pgbench's, scale 10)"
SQLITE_URL=sqlite://$WORK/bench.db
bench_server "$SQLITE_URL" off
bench_data "$BASE" 1
SQLITE_TOKEN=$TOKEN SQLITE_TASK=${TASKS[0]}
stop_server "$SERVER_PID"

PG_DB=tasklight_bench_$$_$RANDOM PGBENCH_DB=pgbench_$$_$RANDOM
create_db "$PG_DB"
create_db "$PGBENCH_DB"
pgbench -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -i -q -s 10 "$PGBENCH_DB" >"$WORK/pgbench-init.log" 2>&1 ||
    die "pgbench -i failed: $(tail -n 5 "$WORK/pgbench-init.log")"
PG_URL=$PG_SERVER/$PG_DB
bench_server "$PG_URL" off
bench_data "$BASE" "$CONNECTIONS"
PG_TOKEN=$TOKEN PG_PROJECT=$PROJECT
stop_server "$SERVER_PID"
# PATCH: each request takes the next of CONNECTIONS tasks and flips its priority, so every request
# is a real change (a write, an audit entry, a new version) and concurrent writers rarely meet on
# one row. `If-Match: *` asks for the same precondition check and row lock as a specific ETag,
# without the script having to track 64 versions.
{
    printf 'local ids = {'
    printf '"%s",' "${TASKS[@]}"
    printf '}\n'
    cat <<'LUA'
local n, priorities = 0, { "high", "low" }
wrk.method = "PATCH"
request = function()
    n = n + 1
    local id = ids[(n % #ids) + 1]
    local body = '{"priority":"' .. priorities[(math.floor(n / #ids) % 2) + 1] .. '"}'
    return wrk.format("PATCH", "/api/v1/tasks/" .. id, nil, body)
end
LUA
} >"$WORK/patch.lua"

AUTH_SQLITE=(-H "Authorization: Bearer $SQLITE_TOKEN")
AUTH_PG=(-H "Authorization: Bearer $PG_TOKEN")
for ROUND in $(seq 1 "$ROUNDS"); do
    taskset -c 0 "$BARE" "127.0.0.1:$BARE_PORT" >/dev/null 2>&1 &
    bare_pid=$!
    track_helper "$bare_pid"
    wait_http "http://127.0.0.1:$BARE_PORT/" "$bare_pid" 10 "bare poem"
    run_wrk bare "http://127.0.0.1:$BARE_PORT/"
    stop_pid "$bare_pid" 5

    for telemetry in off all; do
        if [[ $telemetry == all ]]; then
            lines_before=$(access_lines "$WORK/server-all.log")
            sink_counts
            spans_before=$SERVER_SPANS
        fi
        bench_server "$SQLITE_URL" "$telemetry"
        run_wrk "task-$telemetry" "$BASE/tasks/$SQLITE_TASK" "${AUTH_SQLITE[@]}"
        run_wrk "me-$telemetry" "$BASE/users/me" "${AUTH_SQLITE[@]}"
        if [[ $telemetry == all ]]; then
            requests=$(metric_sum '^(tasklight_)?http_server_request_duration_seconds_count')
            dropped=$(metric_sum '^tasklight_telemetry_dropped_total')
        fi
        stop_server "$SERVER_PID"
        [[ $telemetry == all ]] && nothing_dropped "$lines_before" "$spans_before" "$requests" "$dropped"
    done

    # Each round's PostgreSQL figures start from vacuumed tables, as under autovacuum: the
    # previous round's PATCHes and pgbench -N leave tens of thousands of dead row versions (every
    # PATCH changes an indexed column), which a list or pgbench -S would otherwise wade through.
    psql_vacuum "$PG_DB"
    psql_vacuum "$PGBENCH_DB"
    run_pgbench pgbench-S "$PGBENCH_DB" -S
    # The list with the default pool of 10 connections, then (with the PATCHes) with as many
    # connections as pgbench has clients: the like-for-like figure of target 4.
    bench_server "$PG_URL" all
    run_wrk list-pool10 "$BASE/projects/$PG_PROJECT/tasks?limit=20" "${AUTH_PG[@]}"
    stop_server "$SERVER_PID"
    bench_server "$PG_URL" all "TASKLIGHT_DB_MAX_CONNECTIONS=$CONNECTIONS"
    run_wrk list-all "$BASE/projects/$PG_PROJECT/tasks?limit=20" "${AUTH_PG[@]}"
    run_wrk patch-all "http://127.0.0.1:$PORT" "${AUTH_PG[@]}" -H 'Content-Type: application/json' \
        -H 'If-Match: *' -s "$WORK/patch.lua"
    stop_server "$SERVER_PID"
    run_pgbench pgbench-N "$PGBENCH_DB" -N
done
stop_pid "$SINK_PID" 10

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m() { echo "${results[$1]}" | median; }
# row WHAT VALUE UNIT RATIO_TEXT
row() { printf '%-58s %10.0f %-6s %s\n' "$1" "$2" "$3" "$4"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
target() { awk -v v="$1" -v t="$2" 'BEGIN {print (v >= t ? "met" : "NOT met")}'; }

bare=$(m bare)
task_off=$(m task-off) task_all=$(m task-all) me_off=$(m me-off) me_all=$(m me-all)
list=$(m list-all) list10=$(m list-pool10) patch=$(m patch-all) pg_s=$(m pgbench-S) pg_n=$(m pgbench-N)
echo
echo "== medians of $ROUNDS round(s), $DURATION each, $CONNECTIONS connections; servers on CPU 0, load on CPU 1"
row "bare poem GET /" "$bare" req/s "1"
row "GET /tasks/{id} (cached), telemetry off" "$task_off" req/s "$(ratio "$task_off" "$bare") of bare poem"
row "GET /tasks/{id} (cached), telemetry all" "$task_all" req/s "$(ratio "$task_all" "$bare") of bare poem"
row "GET /users/me, telemetry off" "$me_off" req/s "$(ratio "$me_off" "$bare") of bare poem"
row "GET /users/me, telemetry all" "$me_all" req/s "$(ratio "$me_all" "$bare") of bare poem"
row "pgbench -S -M prepared" "$pg_s" tps ""
row "GET /projects/{id}/tasks?limit=20 (PG), all, pool 10" "$list10" req/s "$(ratio "$list10" "$pg_s") of pgbench -S"
row "the same, pool $CONNECTIONS (as many as pgbench's clients)" "$list" req/s "$(ratio "$list" "$pg_s") of pgbench -S"
row "pgbench -N -M prepared" "$pg_n" tps ""
row "PATCH /tasks/{id} with If-Match (PG), all" "$patch" req/s "$(ratio "$patch" "$pg_n") of pgbench -N"
echo
r1=$(ratio "$task_all" "$bare") r2a=$(ratio "$task_all" "$task_off") r2b=$(ratio "$me_all" "$me_off")
r3=$(ratio "$me_all" "$task_all") r4=$(ratio "$list" "$pg_s") r5=$(ratio "$patch" "$pg_n")
echo "== targets (issue 12)"
echo "1. cached read, all / bare poem          $r1  (>= 0.25)  $(target "$r1" 0.25)"
echo "2. telemetry all / off, task | me          $r2a | $r2b  (>= 0.85)  $(target "$r2a" 0.85) | $(target "$r2b" 0.85)"
echo "3. /users/me all / cached task read all    $r3  (>= 0.9)   $(target "$r3" 0.9)"
echo "4. list of 20 (PG) all / pgbench -S        $r4  (>= 0.35)  $(target "$r4" 0.35)"
echo "5. PATCH (PG) all / pgbench -N             $r5  (>= 0.30)  $(target "$r5" 0.30)"
last_sink_counts  # printed by the sink as it stopped
echo "nothing dropped with telemetry all on SQLite: $CHECKED requests, each with its access line (request,"
echo "trace, span and instance ids) and its server span at the sink; 0 counted as dropped"
echo "in all: $(grep -c tasklight::access "$WORK/server-all.log") access lines, $SPANS spans received ($SERVER_SPANS server spans)"
