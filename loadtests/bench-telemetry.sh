#!/usr/bin/env bash
# What telemetry costs: throughput of one cheap authenticated GET (`GET /api/v1/users/me`: token
# check, session lookup, user read) with
#   off  - RUST_LOG=off, no trace export (metrics cannot be switched off and are on in every run)
#   logs - JSON logs (access line per request) written to a file, no trace export
#   all  - JSON logs to a file, and every request traced and exported over OTLP/gRPC to a sink
# measured in the same run, alternating configurations round by round. The server is pinned to
# CPU 0, wrk and the OTLP sink to CPU 1. Prints requests/s and the ratio of each to `off`.
#
# Usage: loadtests/bench-telemetry.sh            (ROUNDS=3 DURATION=10s CONNECTIONS=64 by default)
# It builds the release binary and the OTLP sink (loadtests/otlp-sink) unless BIN and SINK name them.
# Traffic goes to 127.0.0.1 only; every run is bounded by DURATION.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ME=bench-telemetry
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$ROOT/.ci/lib.sh"
TARGET=${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}

require wrk "apt-get install wrk"
require taskset util-linux
[ "$(nproc)" -ge 2 ] || die "needs two cores to pin server and load generator apart"

if [[ -z ${BIN:-} || -z ${SINK:-} ]]; then
  echo "== building (release)"
  [[ -n ${BIN:-} ]] || (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
  [[ -n ${SINK:-} ]] || (cd "$ROOT/loadtests/otlp-sink" && CARGO_TARGET_DIR=$TARGET/otlp-sink cargo build --release --quiet)
fi
BIN=${BIN:-$TARGET/release/tasklight}
SINK=${SINK:-$TARGET/otlp-sink/release/otlp-sink}

read -r PORT ADMIN_PORT SINK_PORT < <(free_ports 3)
BASE="http://127.0.0.1:$PORT"
WORK=""
scratch_dir WORK bench
on_exit "" ""

# The benchmark measures telemetry, not the limiter's refusals: one user sends ~30,000 requests a
# second. The limiter still decides (in-process) on every request.
bench_env bench
BENCH_ENV+=("DATABASE_URL=sqlite://$WORK/bench.db")
# The server on CPU 0, wrk and the sink on CPU 1.
SERVER_WRAPPER=(taskset -c 0)

bench_server() { # $1 = configuration
  telemetry_env "$1" "$SINK_PORT"
  LIVE_TIMEOUT_S=10 start_server "server ($1)" "$WORK" "$WORK/server-$1.log" "$PORT" "$ADMIN_PORT" \
    "${BENCH_ENV[@]}" "${TELEMETRY_ENV[@]}"
}

taskset -c 1 "$SINK" "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
track_helper "$SINK_PID"

echo "== preparing a user"
bench_server off
curl -fsS "$BASE/api/v1/auth/register" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"benchmark password","display_name":"Bench"}' >/dev/null
TOKEN=$(curl -fsS "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"benchmark password"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
stop_server "$SERVER_PID"

declare -A results
for round in $(seq 1 "$ROUNDS"); do
  for config in off logs all; do
    bench_server "$config"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/users/me" >/dev/null
    rps=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer $TOKEN" \
      "$BASE/api/v1/users/me" | tee "$WORK/wrk-$config-$round.txt" | awk '/Requests\/sec/ {print $2}')
    non2xx=$(awk '/Non-2xx/ {print $4}' "$WORK/wrk-$config-$round.txt")
    [ -z "$non2xx" ] || die "round $round $config: $non2xx non-2xx answers"
    if [ "$config" = all ]; then
      dropped=$(curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/tasklight_telemetry_dropped_total\{signal="spans"\}/ {print $2}')
    fi
    stop_server "$SERVER_PID"
    results[$config]="${results[$config]:-} $rps"
    printf 'round %d  %-4s %10.0f req/s\n' "$round" "$config" "$rps"
  done
done

stop_pid "$SINK_PID" 10
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
off=$(echo "${results[off]}" | median)
echo
echo "== median of $ROUNDS rounds, $DURATION each, $CONNECTIONS connections, GET /api/v1/users/me"
for config in off logs all; do
  value=$(echo "${results[$config]}" | median)
  awk -v c="$config" -v v="$value" -v o="$off" 'BEGIN {printf "%-4s %10.0f req/s  %5.1f%% of off  (%.1f us/request)\n", c, v, 100*v/o, 1e6/v}'
done
echo "log lines written (all runs): $(cat "$WORK"/server-logs.log "$WORK"/server-all.log | grep -c tasklight::access)"
echo "$(cat "$WORK/sink.log") ; spans dropped in the last 'all' run: ${dropped:-0}"
