#!/usr/bin/env bash
# Resident memory of the service (issue 12, target 6): idle, after 100,000 and after 1,000,000
# cached reads, and while 2,000 keep-alive connections are open. The growth between 100,000 and
# 1,000,000 requests is the figure that shows a leak; it should stay under 10% of the first.
#
# The service runs on SQLite with telemetry all (JSON logs to a file, every request traced to the
# OTLP sink), on CPU 0; wrk on CPU 1 sends GET /api/v1/tasks/{id} in 1 s bursts until the server's
# own request counter (http_server_request_duration_seconds_count on /metrics) passes each mark.
#
# Usage: loadtests/memory-hotpath.sh        (REQUESTS=1000000 CONNECTIONS=2000; BIN and SINK as in
#                                           bench-hotpath.sh). Traffic goes to 127.0.0.1 only; every
#                                           loop is bounded (at most MAX_SECONDS of load, 600).
set -euo pipefail

REQUESTS=${REQUESTS:-1000000}
CONNECTIONS=${CONNECTIONS:-2000}
MAX_SECONDS=${MAX_SECONDS:-600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ME=memory-hotpath
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$ROOT/.ci/lib.sh"
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}

require wrk "apt-get install wrk"
require taskset util-linux
release_tools "$ROOT" "$TARGET"
# wrk and the server each need a descriptor per connection.
ulimit -n "$((CONNECTIONS + 1024))" 2>/dev/null || die "cannot raise the open-file limit to $((CONNECTIONS + 1024))"

read -r PORT ADMIN_PORT SINK_PORT < <(free_ports 3)
BASE="http://127.0.0.1:$PORT/api/v1"
WORK=""
scratch_dir WORK memory
on_exit "" ""
taskset -c 1 "$SINK" "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
track_helper "$!"

bench_env memory
telemetry_env all "$SINK_PORT"
SERVER_WRAPPER=(taskset -c 0)
start_server "server" "$WORK" "$WORK/server.log" "$PORT" "$ADMIN_PORT" "${BENCH_ENV[@]}" \
    "DATABASE_URL=sqlite://$WORK/memory.db" "${TELEMETRY_ENV[@]}"
bench_data "$BASE" 1
TASK=${TASKS[0]}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
served() {
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^http_server_request_duration_seconds_count/ {n += $2} END {printf "%d", n}'
}
# load_until N: bursts of wrk until the server has served N requests.
load_until() {
    local started=$SECONDS
    while (($(served) < $1)); do
        ((SECONDS - started < MAX_SECONDS)) || die "did not reach $1 requests in $MAX_SECONDS s"
        taskset -c 1 wrk -t1 -c64 -d1s -H "Authorization: Bearer $TOKEN" "$BASE/tasks/$TASK" >/dev/null
    done
}

sleep 2
idle=$(rss_kib)
load_until 100000
sleep 2
after_100k=$(rss_kib)
load_until "$REQUESTS"
sleep 2
after_all=$(rss_kib)
total=$(served)
# CONNECTIONS keep-alive connections held open for 5 s by one wrk thread (a request now and then
# on each); the figure is read while they are open.
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d8s --timeout 10s -H "Authorization: Bearer $TOKEN" \
    "$BASE/tasks/$TASK" >"$WORK/wrk-connections.txt" &
wrk_pid=$!
track_helper "$wrk_pid"
open=0
for _ in $(seq 1 20); do
    sleep 0.25
    open=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
    ((open >= CONNECTIONS)) && break
done
sleep 1
with_connections=$(rss_kib)
wait "$wrk_pid" || true
forget_pid "$wrk_pid"

growth=$(awk -v a="$after_100k" -v b="$after_all" 'BEGIN {printf "%.1f", 100 * (b - a) / a}')
echo "== resident memory (VmRSS) of the service, telemetry all, SQLite"
printf '%-44s %8.1f MiB\n' "idle, after start-up and set-up" "$(awk -v k="$idle" 'BEGIN {print k / 1024}')"
printf '%-44s %8.1f MiB\n' "after 100,000 requests" "$(awk -v k="$after_100k" 'BEGIN {print k / 1024}')"
printf '%-44s %8.1f MiB\n' "after $total requests" "$(awk -v k="$after_all" 'BEGIN {print k / 1024}')"
printf '%-44s %8.1f MiB\n' "with $open keep-alive connections open" "$(awk -v k="$with_connections" 'BEGIN {print k / 1024}')"
echo "growth from 100,000 to $total requests: $growth% of the figure after 100,000 (target < 10%)"
awk -v g="$growth" 'BEGIN {exit !(g < 10)}' || echo "NOT met"
