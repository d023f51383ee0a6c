#!/usr/bin/env bash
# Runs one of the k6 scenarios in loadtests/k6/ against a local cluster: N instances of the release
# binary behind nginx, on PostgreSQL + Redis (the production shape) or on one shared SQLite file.
#
#   loadtests/run-local.sh [-n N] [--db postgres|sqlite] [--chaos] SCRIPT [k6 args...]
#
#   SCRIPT     smoke, load, stress, spike, soak, ratelimit, failover (loadtests/k6/SCRIPT.js), or a path
#   -n N       instances (default 3)
#   --db       postgres (default: a fresh database on postgres://postgres@127.0.0.1:5432, dropped at
#              the end, and Redis on 127.0.0.1:6379 under a key prefix of its own, deleted at the end)
#              or sqlite (one SQLite file shared by the instances, no Redis)
#   --chaos    while k6 runs, restart the instances one at a time: SIGTERM, wait for the exit, start
#              again on the same ports (meant for failover.js)
#   --sse N    while k6 runs, N live event streams (N/5 users, 5 each) through nginx follow one
#              project whose task changes 10 times a second (loadtests/sse/streams.py): reports
#              fan-out latency, whether every stream got every change, and resident memory per
#              stream; a stream that misses a change fails the run
#   k6 args    passed to `k6 run` before the script, e.g. -e DURATION=30s -e RATE=200
#              (k6 also reads the script's variables from the environment: DURATION=30s ... works)
#
# Environment:
#   BIN             release binary (default ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight)
#   K6, NGINX       the tools (default: on the PATH; k6 also from CI's venv $CARGO_TARGET_DIR/ci-venv)
#   SUMMARY_DIR     where k6 writes <script>-summary.json (default target/loadtests in the repository);
#                   the logs of each run go to SUMMARY_DIR/runs/<script>-<time>/ and are kept
#   CHAOS_START     seconds after k6 starts before the first restart (default 10)
#   CHAOS_INTERVAL  seconds between one instance being back and the next restart (default 5)
#   RATELIMIT_POLICY, RATELIMIT_QUOTA  for ratelimit.js: the policy made small (user or ip, default
#                   user) and its quota (default 50/10s,burst=10); every other quota is generous
#   K6_TIMEOUT      seconds k6 may run before it is stopped (default 7200)
#   INSTANCE_ENV    extra NAME=value settings for the instances, space-separated (they win over the
#                   ones above, not over the ports and INSTANCE_ID), e.g. "TASKLIGHT_ACCESS_TOKEN_TTL_SECS=60 TASKLIGHT_DB_MAX_CONNECTIONS=20"
#
# Prints where the logs are, the headline figures from the summary (p95, p99, request rate) and
# k6's exit code, and exits with it (99: thresholds failed). Every process it starts is stopped, the
# database dropped and the Redis keys deleted on any exit; every wait is bounded; all traffic stays
# on 127.0.0.1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ME="run-local"
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$REPO/.ci/lib.sh"
K6_DIR=$REPO/loadtests/k6
SUMMARY_DIR=${SUMMARY_DIR:-$REPO/target/loadtests}
CHAOS_START=${CHAOS_START:-10}
CHAOS_INTERVAL=${CHAOS_INTERVAL:-5}
K6_TIMEOUT=${K6_TIMEOUT:-7200}
RATELIMIT_POLICY=${RATELIMIT_POLICY:-user}
RATELIMIT_QUOTA=${RATELIMIT_QUOTA:-50/10s,burst=10}

DRAIN_DELAY_MS=2000
SHUTDOWN_TIMEOUT_MS=10000
# A SIGTERMed instance must be gone within drain delay + shutdown timeout + this margin.
EXIT_LIMIT_S=$(((DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS) / 1000 + 5))

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

N=3
DB=postgres
CHAOS=""
SSE=""
while (($# > 0)); do
    case $1 in
    -n) [[ $# -ge 2 ]] || die "-n needs a number"; N=$2; shift 2 ;;
    -n*) N=${1#-n}; shift ;;
    --db) [[ $# -ge 2 ]] || die "--db needs postgres or sqlite"; DB=$2; shift 2 ;;
    --db=*) DB=${1#--db=}; shift ;;
    --chaos) CHAOS=1; shift ;;
    --sse) [[ $# -ge 2 ]] || die "--sse needs a number of streams"; SSE=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
    esac
done
[[ $# -ge 1 ]] || { usage >&2; exit 2; }
SCRIPT_ARG=$1
shift
K6_ARGS=("$@")

[[ $N =~ ^[1-9][0-9]?$ ]] || die "-n takes 1 to 99 instances, got '$N'"
[[ $DB == postgres || $DB == sqlite ]] || die "--db takes postgres or sqlite, got '$DB'"
[[ -z $CHAOS || $N -ge 2 ]] || die "--chaos needs at least 2 instances (nothing would serve during a restart)"
if [[ -f $SCRIPT_ARG ]]; then
    SCRIPT_PATH=$(cd "$(dirname "$SCRIPT_ARG")" && pwd)/$(basename "$SCRIPT_ARG")
elif [[ -f $K6_DIR/$SCRIPT_ARG.js ]]; then
    SCRIPT_PATH=$K6_DIR/$SCRIPT_ARG.js
else
    names=""
    for f in "$K6_DIR"/*.js; do names+=" $(basename "$f" .js)"; done
    die "no k6 script '$SCRIPT_ARG' (one of:$names)"
fi
SCRIPT_NAME=$(basename "$SCRIPT_PATH" .js)

cluster_require "$DB" "; or use --db sqlite"

# Where things go: the logs of the run are kept, the scratch directory (the instances' working
# directory, nginx's pid and temp files) is not.
mkdir -p "$SUMMARY_DIR"
SUMMARY_DIR=$(cd "$SUMMARY_DIR" && pwd)
LOG_DIR=$SUMMARY_DIR/runs/$SCRIPT_NAME-$(date -u +%Y%m%dT%H%M%SZ)-$$
mkdir -p "$LOG_DIR"
SCRATCH=""
scratch_dir SCRATCH k6
TAIL_PID=""

# shellcheck disable=SC2317  # run on exit
logs_at_exit() { echo "run-local: logs in $LOG_DIR" >&2; }
on_exit "" logs_at_exit

# ---------------------------------------------------------------------------------------------------
# Ports, database, instances.

mapfile -t NAMES < <(seq 1 "$N")
cluster_setup "$SCRATCH" local- "${NAMES[@]}"
log "$SCRIPT_NAME: $N instances on $DB$([[ -n $CHAOS ]] && echo ', with chaos'), logs in $LOG_DIR"

K6_ENV=(-e "BASE_URL=$BASE_URL" -e "SUMMARY_DIR=$SUMMARY_DIR")
if [[ $SCRIPT_NAME == ratelimit ]]; then
    case $RATELIMIT_POLICY in
    user) CLUSTER_ENV+=("TASKLIGHT_RATE_LIMIT_USER=$RATELIMIT_QUOTA") ;;
    ip) CLUSTER_ENV+=("TASKLIGHT_RATE_LIMIT_IP=$RATELIMIT_QUOTA") ;;
    *) die "RATELIMIT_POLICY takes user or ip, got '$RATELIMIT_POLICY'" ;;
    esac
    # With Redis the instances share one quota; without it each one limits alone.
    SCOPES=1
    [[ $DB == sqlite ]] && SCOPES=$N
    K6_ENV+=(-e "POLICY=$RATELIMIT_POLICY" -e "EXPECT_QUOTA=$RATELIMIT_QUOTA" -e "LIMITER_SCOPES=$SCOPES")
    log "rate limit under test: $RATELIMIT_POLICY $RATELIMIT_QUOTA ($SCOPES limiter(s)); every other quota generous"
fi

# Trace export and error reporting, when the caller has them set.
for var in OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG \
    OTEL_RESOURCE_ATTRIBUTES SENTRY_DSN SENTRY_ENVIRONMENT; do
    [[ -n ${!var:-} ]] && CLUSTER_ENV+=("$var=${!var}")
done

if [[ $DB == postgres ]]; then
    cluster_postgres k6
    log "database $CLUSTER_DB, Redis key prefix $CLUSTER_REDIS_PREFIX"
else
    # Relative to the instances' working directory, the scratch directory.
    CLUSTER_ENV+=("DATABASE_URL=sqlite://tasklight.db")
    # Without Redis an instance evicts only its own in-process cache after a write.
    K6_ENV+=(-e "STALE_READS_OK=1")
    log "SQLite file $SCRATCH/tasklight.db, no Redis"
fi

# Extra settings for the instances, e.g. INSTANCE_ENV="TASKLIGHT_ACCESS_TOKEN_TTL_SECS=60".
if [[ -n ${INSTANCE_ENV:-} ]]; then
    read -r -a extra <<<"$INSTANCE_ENV"
    for kv in "${extra[@]}"; do
        [[ $kv =~ ^[A-Z_][A-Z0-9_]*=.*$ ]] || die "INSTANCE_ENV: '$kv' is not NAME=value"
        CLUSTER_ENV+=("$kv")
    done
fi
cluster_migrate "$LOG_DIR/migrate.log"

for name in "${INSTANCES[@]}"; do
    start_instance "$name" "$LOG_DIR/instance-local-$name.log"
done

# ---------------------------------------------------------------------------------------------------
# nginx in front of them: config and logs in LOG_DIR/nginx, pid and temp files in SCRATCH.

NGX=$LOG_DIR/nginx
write_nginx_conf "$NGX" "$SCRATCH" 32 30s "buffer=64k flush=1s"
start_nginx "$NGX" k6-run-local-check
log "nginx (pid $NGINX_PID) on $BASE_URL in front of $N instances"

# ---------------------------------------------------------------------------------------------------
# k6, and the chaos while it runs.

SSE_PID=""
if [[ -n $SSE ]]; then
    [[ $SSE =~ ^[1-9][0-9]*$ ]] || die "--sse takes a number of streams, got '$SSE'"
    admins=""
    for name in "${INSTANCES[@]}"; do admins+="${admins:+,}http://127.0.0.1:${ADMIN_PORT[$name]}"; done
    # The streams follow for as long as k6's plateau (DURATION, default 3m) lasts, at the least 30 s.
    sse_seconds=$(python3 -c 'import re,sys; m = re.fullmatch(r"(\d+)([smh])", sys.argv[1]); print(max(30, int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]) if m else 180)' "${DURATION:-3m}")
    python3 "$REPO/loadtests/sse/streams.py" "$BASE_URL" "$admins" --users $(((SSE + 4) / 5)) \
        --streams-per-user 5 --duration "$sse_seconds" --summary "$LOG_DIR/sse-summary.json" \
        >"$LOG_DIR/sse.log" 2>&1 &
    SSE_PID=$!
    track_helper "$SSE_PID"
    log "sse (pid $SSE_PID): $SSE streams for ${sse_seconds}s, log $LOG_DIR/sse.log"
fi

start_k6 "$LOG_DIR/k6.log" "${K6_ENV[@]}" "${K6_ARGS[@]}" "$SCRIPT_PATH"
tail -n +1 -f --pid="$K6_PID" "$LOG_DIR/k6.log" &
TAIL_PID=$!
track_helper "$TAIL_PID"
log "k6 (pid $K6_PID): $SCRIPT_PATH against $BASE_URL"

RESTARTS=()
RESTART_PROBLEMS=0
# restart I: SIGTERM, wait (bounded) for the exit, start again on the same ports.
restart() {
    local i=$1 pid=${INST_PID[$1]}
    TERM_SENT=$(now)
    kill -TERM "$pid" 2>/dev/null || true
    await_exit "$i" "$EXIT_LIMIT_S"
    [[ $EXIT_CODE -eq 0 ]] || RESTART_PROBLEMS=$((RESTART_PROBLEMS + 1))
    RESTARTS+=("local-$i exit $EXIT_CODE after ${EXIT_SECS}s")
    log "chaos: local-$i (pid $pid) stopped with SIGTERM at $(awk -v a="$K6_START" -v b="$TERM_SENT" 'BEGIN { printf "%.1f", b - a }')s, exit $EXIT_CODE after ${EXIT_SECS}s; starting it again"
    start_instance "$i" "$LOG_DIR/instance-local-$i.log"
}

if [[ -n $CHAOS ]]; then
    next=1
    wait_until=$((SECONDS + CHAOS_START))
    while alive "$K6_PID" && ((SECONDS < K6_STARTED_AT + K6_TIMEOUT)); do
        if ((SECONDS >= wait_until)); then
            restart "$next"
            next=$((next % N + 1))
            wait_until=$((SECONDS + CHAOS_INTERVAL))
        fi
        sleep 0.2
    done
fi
wait_k6 "$K6_TIMEOUT" 30
SSE_CODE=0
if [[ -n $SSE_PID ]]; then
    # The streams' own deadline is DURATION plus setup and settling: bounded.
    deadline=$((SECONDS + 120))
    while alive "$SSE_PID" && ((SECONDS < deadline)); do sleep 0.5; done
    if alive "$SSE_PID"; then
        stop_pid "$SSE_PID" 1
        SSE_CODE=124
    else
        wait "$SSE_PID" || SSE_CODE=$?
    fi
fi
# tail follows k6's pid and ends within a second of it.
deadline=$((SECONDS + 3))
while alive "$TAIL_PID" && ((SECONDS < deadline)); do sleep 0.1; done
stop_pid "$TAIL_PID" 1

# ---------------------------------------------------------------------------------------------------
# Report.

SUMMARY_JSON=$SUMMARY_DIR/$SCRIPT_NAME-summary.json
if [[ -s $SUMMARY_JSON && $SUMMARY_JSON -nt $LOG_DIR/migrate.log ]]; then
    cp "$SUMMARY_JSON" "$LOG_DIR/"
    HEADLINE=$(python3 - "$SUMMARY_JSON" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["metrics"]
def v(metric, field, default=0.0):
    return m.get(metric, {}).get("values", {}).get(field, default)
print("p95 %.1f ms, p99 %.1f ms, %.1f requests/s (%d requests in %.1f s), %.2f%% failed" % (
    v("http_req_duration", "p(95)"), v("http_req_duration", "p(99)"), v("http_reqs", "rate"),
    v("http_reqs", "count"), d.get("state", {}).get("testRunDurationMs", 0) / 1000,
    100 * v("http_req_failed", "rate")))
PY
    )
else
    HEADLINE="no summary written ($SUMMARY_JSON)"
fi

nginx_counts "$NGX"
INSTANCE_ERRORS=0
for name in "${INSTANCES[@]}"; do
    c=$(grep -c '"level":"ERROR"' "$LOG_DIR/instance-local-$name.log" 2>/dev/null || true)
    INSTANCE_ERRORS=$((INSTANCE_ERRORS + c))
done

echo
echo "=== run-local: $SCRIPT_NAME on $N instances ($DB)$([[ -n $CHAOS ]] && echo ', chaos')"
echo "  $SCRIPT_NAME: $HEADLINE"
echo "  nginx: ${NGX_5XX} answers 5xx, ${NGX_RETRIED} requests passed to another instance, ${NGX_ERRORS} [error] lines (a refused connect to a stopped instance is one)"
echo "  instances: ${INSTANCE_ERRORS} ERROR log lines"
if [[ -n $CHAOS ]]; then
    echo "  chaos: ${#RESTARTS[@]} restarts: $(printf '%s; ' "${RESTARTS[@]}" | sed 's/; $//')"
    ((RESTART_PROBLEMS == 0)) || echo "  WARNING: $RESTART_PROBLEMS SIGTERMed instance(s) did not exit 0"
    ((${#RESTARTS[@]} > 0)) || echo "  WARNING: k6 ended before any restart (CHAOS_START=$CHAOS_START)"
fi
if [[ -n $SSE ]]; then
    echo "  sse: $(python3 - "$LOG_DIR/sse-summary.json" <<'PY' 2>/dev/null || echo "no summary (see $LOG_DIR/sse.log)"
import json, sys
d = json.load(open(sys.argv[1]))
f = d["fanout_ms"]
print("%d of %d streams open, %d with every one of %d changes in order; fan-out p50 %.1f ms, p99 %.1f ms, max %.1f ms; %.1f KiB resident memory per stream" % (
    d["streams_open"], d["streams_requested"], d["streams_with_every_change_in_order"], d["changes"],
    f["p50"], f["p99"], f["max"], d["resident_bytes_per_stream"] / 1024))
PY
)"
fi
echo "  summary: $SUMMARY_JSON"
echo "  logs:    $LOG_DIR (k6.log, instance-local-N.log, nginx/access.log, nginx/error.log)"
case $K6_CODE in
0) meaning="passed" ;;
99) meaning="thresholds failed" ;;
124) meaning="stopped after K6_TIMEOUT" ;;
*) meaning="k6 error" ;;
esac
echo "  k6 exit code: $K6_CODE ($meaning)"
if ((K6_CODE == 0 && SSE_CODE != 0)); then
    echo "  sse: FAILED (exit $SSE_CODE): a stream missed a change or did not open"
    exit 1
fi
exit "$K6_CODE"
