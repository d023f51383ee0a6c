#!/usr/bin/env bash
# Checks the Grafana dashboards (dashboards/*.json) and the Prometheus rule files
# (observability/prometheus/rules/*.yml) against a real Prometheus scraping real instances:
#
#   1. two instances of the release binary on one fresh PostgreSQL database and one Redis key
#      prefix (so the L2 cache and cross-instance invalidation have data), JSON logs to files,
#      a small anonymous rate limit so that 429s happen,
#   2. a Prometheus (Debian package `prometheus`) scraping both admin listeners every second as
#      job `tasklight`, with the rule files loaded (evaluated every second),
#   3. observability/dashboard-check/check.py: bounded traffic, then every PromQL expression of the
#      dashboards and rule files evaluated through Prometheus's API (must parse; must return data
#      unless allowed empty, see ALLOWED_EMPTY_PROMQL there), and every LogQL query of the
#      dashboards checked against the captured log lines.
#
# Usage:   observability/check-dashboards.sh
#          (CHECK_DASHBOARDS_DIR checks another folder of dashboards, CHECK_TRAFFIC_SECONDS sets the
#          length of the traffic, 12 s by default)
# Needs:   the release binary: BIN (default ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight),
#          prometheus and promtool (apt-get install -y prometheus), python3, curl, psql, redis-cli,
#          PostgreSQL at CHECK_PG_SERVER (default postgres://postgres@127.0.0.1:5432, trust auth)
#          and Redis at CHECK_REDIS_URL (default redis://127.0.0.1:6379).
# Exit:    0 when every check passed, 1 otherwise. Everything it started or created (processes,
#          database, Redis keys, scratch directory) is removed on exit. Only 127.0.0.1 is used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
START=$SECONDS

BIN=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight}
PG_SERVER=${CHECK_PG_SERVER:-postgres://postgres@127.0.0.1:5432}
REDIS=${CHECK_REDIS_URL:-redis://127.0.0.1:6379}
TRAFFIC_SECONDS=${CHECK_TRAFFIC_SECONDS:-12}
DASHBOARDS=${CHECK_DASHBOARDS_DIR:-$REPO/dashboards}

# The environment of the machine must not change what the instances see.
unset DATABASE_URL JWT_SECRET REDIS_URL TASKLIGHT_LISTEN TASKLIGHT_ADMIN_LISTEN INSTANCE_ID RUST_LOG \
    LOG_FORMAT OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG \
    OTEL_RESOURCE_ATTRIBUTES SENTRY_DSN SENTRY_ENVIRONMENT SENTRY_SEND_DEFAULT_PII
# shellcheck disable=SC2046
unset $(compgen -v TASKLIGHT_) 2>/dev/null || true

say() { echo "== [$(date -u +%H:%M:%S)] $*"; }
die() { echo "check-dashboards: $*" >&2; exit 1; }

for tool in prometheus promtool python3 curl psql redis-cli; do
    command -v "$tool" >/dev/null || die "$tool not found (prometheus and promtool: apt-get install -y prometheus)"
done
[[ -x $BIN ]] || die "no release binary at $BIN (build it: cargo build --release, or set BIN)"

# ---------------------------------------------------------------------------------------------
# Cleanup of everything this script starts or creates.

SCRATCH=$(mktemp -d /tmp/dash-check.XXXXXX)
PIDS=()
PG_DB=""
PREFIX="tasklight-dash-check-$$-$RANDOM"

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local status=$?
    set +e
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ -n $PG_DB ]]; then
        psql "$PG_SERVER/postgres" -qX -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
            || echo "check-dashboards: could not drop database $PG_DB" >&2
    fi
    redis-cli -u "$REDIS" --scan --pattern "$PREFIX*" 2>/dev/null | xargs -r redis-cli -u "$REDIS" del >/dev/null 2>&1
    rm -rf "$SCRATCH"
    echo "check-dashboards: $([[ $status -eq 0 ]] && echo passed || echo FAILED) in $((SECONDS - START))s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# ---------------------------------------------------------------------------------------------
say "rule files"
shopt -s nullglob
RULE_FILES=("$REPO"/observability/prometheus/rules/*.yml "$REPO"/observability/prometheus/rules/*.yaml)
shopt -u nullglob
if ((${#RULE_FILES[@]})); then
    promtool check rules "${RULE_FILES[@]}" || die "promtool check rules failed"
else
    echo "no rule files in observability/prometheus/rules: only the dashboards are checked"
fi

say "database and Redis"
redis-cli -u "$REDIS" ping >/dev/null 2>&1 || die "Redis not reachable at $REDIS"
PG_DB="tasklight_dash_check_$$_$RANDOM"
psql "$PG_SERVER/postgres" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$PG_DB\"" >/dev/null \
    || { PG_DB=""; die "cannot create a database on $PG_SERVER"; }
JWT=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')

read -r API_A ADMIN_A API_B ADMIN_B PROM_PORT <<<"$(free_ports 5)"

start_instance() { # name api_port admin_port
    local name=$1 api=$2 admin=$3
    env DATABASE_URL="$PG_SERVER/$PG_DB" \
        JWT_SECRET="$JWT" \
        REDIS_URL="$REDIS" \
        TASKLIGHT_REDIS_KEY_PREFIX="$PREFIX" \
        TASKLIGHT_LISTEN="127.0.0.1:$api" \
        TASKLIGHT_ADMIN_LISTEN="127.0.0.1:$admin" \
        INSTANCE_ID="$name" \
        LOG_FORMAT=json \
        RUST_LOG=info \
        TASKLIGHT_DRAIN_DELAY_MS=0 \
        TASKLIGHT_RATE_LIMIT_IP='20/60s,burst=5' \
        TASKLIGHT_RATE_LIMIT_USER='10000/1s,burst=10000' \
        TASKLIGHT_RATE_LIMIT_AUTH_IP='10000/1s,burst=10000' \
        TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT='10000/1s,burst=10000' \
        "$BIN" serve >"$SCRATCH/$name.log" 2>"$SCRATCH/$name.err" &
    PIDS+=($!)
}

wait_ready() { # name admin_port pid
    local name=$1 admin=$2 pid=$3
    for _ in $(seq 150); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$admin/health/ready" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$SCRATCH/$name.log" "$SCRATCH/$name.err" >&2
            die "instance $name exited during start-up"
        fi
        sleep 0.2
    done
    tail -n 20 "$SCRATCH/$name.log" "$SCRATCH/$name.err" >&2
    die "instance $name not ready after 30s"
}

say "instances dash-a (api $API_A, admin $ADMIN_A) and dash-b (api $API_B, admin $ADMIN_B) on database $PG_DB"
# One at a time: both would apply the migrations of the fresh database.
start_instance dash-a "$API_A" "$ADMIN_A"
wait_ready dash-a "$ADMIN_A" "${PIDS[0]}"
start_instance dash-b "$API_B" "$ADMIN_B"
wait_ready dash-b "$ADMIN_B" "${PIDS[1]}"

say "Prometheus on 127.0.0.1:$PROM_PORT"
{
    echo "global:"
    echo "  scrape_interval: 1s"
    echo "  scrape_timeout: 1s"
    echo "  evaluation_interval: 1s"
    echo "rule_files:"
    for f in "${RULE_FILES[@]}"; do
        echo "  - '$f'"
    done
    echo "scrape_configs:"
    echo "  # As in observability/prometheus/prometheus.yml: each target carries its instance_id."
    echo "  - job_name: tasklight"
    echo "    static_configs:"
    echo "      - targets: ['127.0.0.1:$ADMIN_A']"
    echo "        labels: {instance_id: dash-a}"
    echo "      - targets: ['127.0.0.1:$ADMIN_B']"
    echo "        labels: {instance_id: dash-b}"
} >"$SCRATCH/prometheus.yml"
promtool check config "$SCRATCH/prometheus.yml" >/dev/null || die "generated Prometheus config is invalid"
prometheus --config.file="$SCRATCH/prometheus.yml" \
    --storage.tsdb.path="$SCRATCH/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" \
    --enable-feature=exemplar-storage \
    --log.level=warn >"$SCRATCH/prometheus.out" 2>&1 &
PIDS+=($!)
for i in $(seq 60); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" 2>/dev/null && break
    if ! kill -0 "${PIDS[2]}" 2>/dev/null || ((i == 60)); then
        cat "$SCRATCH/prometheus.out" >&2
        die "Prometheus did not start"
    fi
    sleep 0.5
done

say "checking (traffic for ${TRAFFIC_SECONDS}s, then every expression)"
set +e
python3 "$REPO/observability/dashboard-check/check.py" \
    --prometheus "http://127.0.0.1:$PROM_PORT" \
    --api "http://127.0.0.1:$API_A,http://127.0.0.1:$API_B" \
    --logs "$SCRATCH/dash-a.log,$SCRATCH/dash-b.log" \
    --dashboards "$DASHBOARDS" \
    --traffic-seconds "$TRAFFIC_SECONDS"
RESULT=$?
set -e
if ((RESULT != 0)) && [[ -s $SCRATCH/prometheus.out ]]; then
    echo "--- Prometheus output:"
    tail -n 20 "$SCRATCH/prometheus.out"
fi
exit "$RESULT"
