#!/usr/bin/env bash
# Checks the Grafana dashboards (dashboards/*.json) and the Prometheus rule files
# (observability/prometheus/rules/*.yml) against a real Prometheus scraping real instances:
#
#   1. two instances of the release binary on one fresh PostgreSQL database and one Redis key
#      prefix (so the L2 cache and cross-instance invalidation have data), JSON logs to files,
#      a small anonymous rate limit so that 429s happen,
#   2. the dependencies' exporters, as in docker-compose.yml but from Debian's packages (the same
#      versions compose pins): prometheus-postgres-exporter on that PostgreSQL server,
#      prometheus-redis-exporter on that Redis, and an nginx in front of both instances (the
#      config loadtests/run-local.sh uses, plus a stub_status listener as in
#      observability/nginx/nginx.conf) read by prometheus-nginx-exporter; that nginx also writes
#      the JSON access log of observability/nginx/nginx.conf, which mtail (Debian package `mtail`,
#      observability/mtail/nginx.mtail) turns into the balancer SLO's counters,
#   3. a Prometheus (Debian package `prometheus`) scraping both admin listeners every second as
#      job `tasklight`, the exporters as jobs `postgres`, `redis` and `nginx`, and mtail as job
#      `nginx-log` (the job names of
#      observability/prometheus/prometheus.yml), with the rule files loaded (evaluated every
#      second),
#   4. observability/dashboard-check/check.py: bounded traffic (a third of it through nginx), then
#      every PromQL expression of the
#      dashboards and rule files evaluated through Prometheus's API (must parse; must return data
#      unless allowed empty, see ALLOWED_EMPTY_PROMQL there), and every LogQL query of the
#      dashboards checked against the captured log lines (the instances' and nginx's),
#   5. `promtool check metrics` on each instance's /metrics after the traffic (every family has
#      samples by then): it must report nothing.
#
# Usage:   observability/check-dashboards.sh
#          (CHECK_DASHBOARDS_DIR checks another folder of dashboards, CHECK_TRAFFIC_SECONDS sets the
#          length of the traffic, 12 s by default)
# Needs:   the release binary: BIN (default ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight),
#          prometheus and promtool (apt-get install -y prometheus), nginx, prometheus-postgres-exporter,
#          prometheus-redis-exporter, prometheus-nginx-exporter, mtail (Debian packages of those names),
#          python3, curl, psql, redis-cli,
#          PostgreSQL at CHECK_PG_SERVER (default postgres://postgres@127.0.0.1:5432, trust auth)
#          and Redis at CHECK_REDIS_URL (default redis://127.0.0.1:6379).
# Exit:    0 when every check passed, 1 otherwise. Everything it started or created (processes,
#          database, Redis keys, scratch directory) is removed on exit. Only 127.0.0.1 is used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
START=$SECONDS
ME=check-dashboards
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$REPO/.ci/lib.sh"

PG_SERVER=${CHECK_PG_SERVER:-$PG_SERVER}
REDIS_SERVER=${CHECK_REDIS_URL:-$REDIS_SERVER}
TRAFFIC_SECONDS=${CHECK_TRAFFIC_SECONDS:-12}
DASHBOARDS=${CHECK_DASHBOARDS_DIR:-$REPO/dashboards}

# The environment of the machine must not change what the instances see.
scrub_env

say() { echo "== [$(date -u +%H:%M:%S)] $*"; }

for tool in prometheus promtool python3 curl psql redis-cli prometheus-postgres-exporter \
    prometheus-redis-exporter prometheus-nginx-exporter mtail; do
    require "$tool" "each is the Debian package of its name, except promtool (package prometheus)"
done
require_bin
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || die "nginx is required (apt-get install -y nginx; or set NGINX)"

# ---------------------------------------------------------------------------------------------
# Everything this script starts or creates is removed on exit.

SCRATCH=""
scratch_dir SCRATCH dash-check
PREFIX="tasklight-dash-check-$$-$RANDOM"
# shellcheck disable=SC2317  # run on exit
verdict() { echo "check-dashboards: $([[ $1 -eq 0 ]] && echo passed || echo FAILED) in $((SECONDS - START))s"; }
on_exit "" verdict

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
redis-cli -u "$REDIS_SERVER" ping >/dev/null 2>&1 || die "Redis not reachable at $REDIS_SERVER"
REDIS_PREFIXES+=("$PREFIX")
PG_DB="tasklight_dash_check_$$_$RANDOM"
create_db "$PG_DB" || die "cannot create a database on $PG_SERVER"
JWT=$(random_secret)

read -r API_A ADMIN_A API_B ADMIN_B PROM_PORT NGINX_PORT STATUS_PORT PG_EXPORTER_PORT REDIS_EXPORTER_PORT \
    NGINX_EXPORTER_PORT MTAIL_PORT <<<"$(free_ports 11)"

# start_instance NAME API_PORT ADMIN_PORT: JSON log lines to SCRATCH/NAME.log (read by check.py),
# stderr to SCRATCH/NAME.err; waits (30 s at most) until it is ready.
start_instance() {
    local name=$1 api=$2 admin=$3
    spawn_server --stderr "$SCRATCH/$name.err" "$SCRATCH" "$SCRATCH/$name.log" \
        DATABASE_URL="$PG_SERVER/$PG_DB" \
        JWT_SECRET="$JWT" \
        REDIS_URL="$REDIS_SERVER" \
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
        TASKLIGHT_WEBHOOK_ALLOWED_NETS=127.0.0.0/8 \
        TASKLIGHT_WEBHOOK_ALLOW_HTTP=true \
        TASKLIGHT_WEBHOOK_RETRY_SCHEDULE=200ms,300ms \
        TASKLIGHT_WEBHOOK_BREAKER_FAILURES=4 \
        TASKLIGHT_WEBHOOK_BREAKER_COOLDOWN_MS=1500
    wait_http "http://127.0.0.1:$admin/health/ready" "$SERVER_PID" 30 "instance $name" \
        "$SCRATCH/$name.log" "$SCRATCH/$name.err"
}

say "instances dash-a (api $API_A, admin $ADMIN_A) and dash-b (api $API_B, admin $ADMIN_B) on database $PG_DB"
# One at a time: both would apply the migrations of the fresh database.
start_instance dash-a "$API_A" "$ADMIN_A"
start_instance dash-b "$API_B" "$ADMIN_B"

# nginx in front of both instances: loadtests/nginx.conf.template as write_nginx_conf renders it
# (.ci/lib.sh), with a stub_status server added on a listener of its own, as in
# observability/nginx/nginx.conf.
INSTANCES=(dash-a dash-b)
API_PORT=([dash-a]=$API_A [dash-b]=$API_B)
BASE_URL="http://127.0.0.1:$NGINX_PORT"
NGX=$SCRATCH/nginx
write_nginx_conf "$NGX" "$SCRATCH" 8 10s
conf=$(<"$NGX/nginx.conf")
[[ $conf == *'}' ]] || die "$NGX/nginx.conf does not end with the http block's brace"
{
    printf '%s\n' "${conf%\}}"
    cat <<STATUS
    # As in observability/nginx/nginx.conf: stub_status for the exporter, on its own listener.
    server {
        listen 127.0.0.1:$STATUS_PORT;
        access_log off;
        location = /stub_status {
            stub_status;
            allow 127.0.0.1;
            deny all;
        }
    }
}
STATUS
} >"$NGX/nginx.conf.new"
mv "$NGX/nginx.conf.new" "$NGX/nginx.conf"
# ...and nginx's JSON access log of observability/nginx/nginx.conf (its maps and `log_format
# json_access`, copied from there) beside the template's own, for the LogQL checks of nginx's lines
# (--logs) and for mtail, whose counters (job nginx-log) the balancer SLO's rules and panels read.
python3 - "$REPO/observability/nginx/nginx.conf" "$NGX/nginx.conf" "$NGX/balancer.log" <<'PY' ||
import re, sys
src, dst, log = sys.argv[1:]
m = re.search(r"\n(    map \$http_x_request_id .*?    log_format json_access .*?}';\n)", open(src).read(), re.S)
conf = open(dst).read()
if not m or conf.count("\nhttp {\n") != 1:
    sys.exit("no maps and log_format json_access in nginx.conf, or no http block in the template")
open(dst, "w").write(conf.replace("\nhttp {\n", "\nhttp {\n" + m.group(1) + f"    access_log {log} json_access;\n", 1))
PY
    die "could not add nginx.conf's JSON access log to $NGX/nginx.conf"
say "nginx on $BASE_URL (stub_status on 127.0.0.1:$STATUS_PORT) in front of both instances"
start_nginx "$NGX" dash-check-nginx
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$STATUS_PORT/stub_status" || die "nginx's stub_status does not answer"
say "mtail on nginx's JSON access log (observability/mtail/nginx.mtail), metrics on 127.0.0.1:$MTAIL_PORT"
mtail --progs "$REPO/observability/mtail" --logs "$NGX/balancer.log" --address 127.0.0.1 --port "$MTAIL_PORT" \
    --emit_prog_label=false --logtostderr >"$SCRATCH/mtail.out" 2>&1 &
track_helper $!
wait_http "http://127.0.0.1:$MTAIL_PORT/metrics" $! 10 mtail "$SCRATCH/mtail.out"

# start_exporter NAME PORT [VAR=VALUE...] COMMAND...: starts an exporter listening on
# 127.0.0.1:PORT (COMMAND says so) in an environment of PATH and the VARs only (the exporters read
# settings from many variables), output to SCRATCH/NAME.out; waits (30 s at most) until its
# /metrics answers.
start_exporter() {
    local name=$1 port=$2
    shift 2
    env -i "PATH=$PATH" "$@" >"$SCRATCH/$name.out" 2>&1 &
    track_helper $!
    wait_http "http://127.0.0.1:$port/metrics" $! 30 "$name" "$SCRATCH/$name.out"
}
say "exporters: postgres on 127.0.0.1:$PG_EXPORTER_PORT, redis on 127.0.0.1:$REDIS_EXPORTER_PORT, nginx on 127.0.0.1:$NGINX_EXPORTER_PORT"
start_exporter postgres-exporter "$PG_EXPORTER_PORT" \
    DATA_SOURCE_NAME="$PG_SERVER/$PG_DB?sslmode=disable" prometheus-postgres-exporter \
    --web.listen-address="127.0.0.1:$PG_EXPORTER_PORT" --log.level=warn
start_exporter redis-exporter "$REDIS_EXPORTER_PORT" \
    prometheus-redis-exporter -redis.addr="$REDIS_SERVER" -web.listen-address="127.0.0.1:$REDIS_EXPORTER_PORT"
start_exporter nginx-exporter "$NGINX_EXPORTER_PORT" \
    prometheus-nginx-exporter -nginx.scrape-uri="http://127.0.0.1:$STATUS_PORT/stub_status" \
    -web.listen-address="127.0.0.1:$NGINX_EXPORTER_PORT"

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
    echo "  # The dependencies' exporters, with the job names of observability/prometheus/prometheus.yml."
    echo "  - job_name: postgres"
    echo "    static_configs:"
    echo "      - targets: ['127.0.0.1:$PG_EXPORTER_PORT']"
    echo "  - job_name: redis"
    echo "    static_configs:"
    echo "      - targets: ['127.0.0.1:$REDIS_EXPORTER_PORT']"
    echo "  - job_name: nginx"
    echo "    static_configs:"
    echo "      - targets: ['127.0.0.1:$NGINX_EXPORTER_PORT']"
    echo "  # nginx's answers by status from its JSON access log (mtail), as in prometheus.yml."
    echo "  - job_name: nginx-log"
    echo "    static_configs:"
    echo "      - targets: ['127.0.0.1:$MTAIL_PORT']"
} >"$SCRATCH/prometheus.yml"
promtool check config "$SCRATCH/prometheus.yml" >/dev/null || die "generated Prometheus config is invalid"
prometheus --config.file="$SCRATCH/prometheus.yml" \
    --storage.tsdb.path="$SCRATCH/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" \
    --enable-feature=exemplar-storage \
    --log.level=warn >"$SCRATCH/prometheus.out" 2>&1 &
track_helper $!
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" $! 30 Prometheus "$SCRATCH/prometheus.out"

say "checking (traffic for ${TRAFFIC_SECONDS}s, then every expression)"
set +e
python3 "$REPO/observability/dashboard-check/check.py" \
    --prometheus "http://127.0.0.1:$PROM_PORT" \
    --api "http://127.0.0.1:$API_A,http://127.0.0.1:$API_B" \
    --nginx "$BASE_URL" \
    --dependencies postgres,redis,nginx \
    --logs "$SCRATCH/dash-a.log,$SCRATCH/dash-b.log,$NGX/balancer.log" \
    --dashboards "$DASHBOARDS" \
    --traffic-seconds "$TRAFFIC_SECONDS"
RESULT=$?
set -e
for admin in "$ADMIN_A" "$ADMIN_B"; do
    lint_status=0
    lint=$(curl -fsS "http://127.0.0.1:$admin/metrics" | promtool check metrics 2>&1) || lint_status=$?
    if ((lint_status != 0)) || [[ -n $lint ]]; then
        echo "$ME: promtool check metrics on 127.0.0.1:$admin/metrics (exit $lint_status):" >&2
        echo "$lint" >&2
        RESULT=1
    else
        say "promtool check metrics on 127.0.0.1:$admin/metrics: nothing to report"
    fi
done
if ((RESULT != 0)); then
    for out in prometheus.out postgres-exporter.out redis-exporter.out nginx-exporter.out nginx/error.log mtail.out; do
        if [[ -s $SCRATCH/$out ]]; then
            echo "--- $out:"
            tail -n 20 "$SCRATCH/$out"
        fi
    done
fi
exit "$RESULT"
