#!/usr/bin/env bash
# The load balancer's own view, checked with a real nginx, a real mtail and a real Prometheus:
#
#   1. a copy of observability/nginx/nginx.conf (its maps, JSON log format, headers and proxy
#      settings as they are; only addresses, paths and proxy_read_timeout changed) in front of one
#      tasklight instance (the release binary on SQLite) and a dead port (upstreams app-2 and
#      app-3), plus a second server with the same location block in front of a small Python
#      upstream that answers too late (proxy_read_timeout 2 s here, 30 s in compose),
#   2. requests with and without X-Request-Id and traceparent: 200s (some retried off the dead
#      port), a 404, a /health probe, then 502s once the instance is stopped and 504s from the
#      late upstream; each answer must carry exactly one X-Request-Id, and each must be found by
#      that id in nginx's JSON access log with the status and upstream_status expected (and, when
#      an instance answered, its own access line with the same request_id and trace_id),
#   3. mtail with observability/mtail/nginx.mtail on nginx's log file: its counters must equal the
#      answers sent, by status (health probes left out, no line unmatched),
#   4. Prometheus scraping mtail as job nginx-log with the rule files loaded: the counters arrive,
#      the balancer SLO's recording rules have data, and TasklightBalancerAvailabilityBudgetBurn
#      (1h/5m) is pending on the 5xx it saw,
#   5. the LogQL queries for nginx's lines (the balancer alert's runbook in
#      observability/prometheus/rules/slo.yml, and the dashboards' {service="nginx"} queries), run
#      over the captured lines by observability/dashboard-check/logql.py.
#
# Usage:   observability/check-balancer-logs.sh
# Needs:   the release binary: BIN (default ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight),
#          nginx, mtail, prometheus and promtool (Debian packages nginx, mtail, prometheus), python3
#          (with PyYAML), curl.
# Exit:    0 when every check passed, 1 otherwise. Everything it started is stopped and its scratch
#          directory removed on exit. Only 127.0.0.1 is used.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
START=$SECONDS
ME=check-balancer-logs
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$REPO/.ci/lib.sh"

scrub_env
say() { echo "== [$(date -u +%H:%M:%S)] $*"; }

for tool in nginx mtail prometheus promtool python3 curl; do
    require "$tool" "Debian packages nginx, mtail, prometheus, python3, curl"
done
python3 -c 'import yaml' 2>/dev/null || die "python3 needs PyYAML (apt-get install -y python3-yaml)"
require_bin

SCRATCH=""
scratch_dir SCRATCH balancer
# shellcheck disable=SC2317  # run on exit
verdict() { echo "check-balancer-logs: $([[ $1 -eq 0 ]] && echo passed || echo FAILED) in $((SECONDS - START))s"; }
# shellcheck disable=SC2317  # run on exit
show_logs() {
    if (($1 != 0)); then
        for f in error.log nginx.out mtail.out prometheus.out instance.err slow.out; do
            [[ -s $SCRATCH/$f ]] || continue
            echo "--- $f (last lines):"
            tail -n 15 "$SCRATCH/$f"
        done
    fi
}
on_exit show_logs verdict

read -r NGINX_PORT SLOW_NGINX_PORT STATUS_PORT API ADMIN DEAD SLOW_UP MTAIL_PORT PROM_PORT <<<"$(free_ports 9)"

# ---------------------------------------------------------------------------------------------
say "mtail program"
mtail --progs "$REPO/observability/mtail" --compile_only --logtostderr >"$SCRATCH/mtail-compile.out" 2>&1 || {
    cat "$SCRATCH/mtail-compile.out" >&2
    die "mtail does not compile observability/mtail/nginx.mtail"
}

say "tasklight instance lb-app-1 (api $API, admin $ADMIN) on SQLite"
mkdir -p "$SCRATCH/instance"
spawn_server --stderr "$SCRATCH/instance.err" "$SCRATCH/instance" "$SCRATCH/instance.log" \
    JWT_SECRET="$(random_secret)" \
    TASKLIGHT_LISTEN="127.0.0.1:$API" \
    TASKLIGHT_ADMIN_LISTEN="127.0.0.1:$ADMIN" \
    TASKLIGHT_TRUSTED_PROXIES=127.0.0.1 \
    TASKLIGHT_DRAIN_DELAY_MS=0 \
    INSTANCE_ID=lb-app-1 \
    LOG_FORMAT=json \
    RUST_LOG=info
INSTANCE_PID=$SERVER_PID
wait_http "http://127.0.0.1:$ADMIN/health/ready" "$INSTANCE_PID" 30 "instance lb-app-1" \
    "$SCRATCH/instance.log" "$SCRATCH/instance.err"

say "a late upstream on 127.0.0.1:$SLOW_UP (answers after 5 s) and a dead one on 127.0.0.1:$DEAD"
python3 - "$SLOW_UP" >"$SCRATCH/slow.out" 2>&1 <<'PY' &
import http.server, sys, time

class Late(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(5)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Late).serve_forever()
PY
track_helper $!
for _ in $(seq 50); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$SLOW_UP" 2>/dev/null && break
    sleep 0.1
done

say "nginx on 127.0.0.1:$NGINX_PORT (and 127.0.0.1:$SLOW_NGINX_PORT in front of the late upstream)"
python3 - "$REPO/observability/nginx/nginx.conf" "$SCRATCH" "$NGINX_PORT" "$SLOW_NGINX_PORT" \
    "$STATUS_PORT" "$API" "$DEAD" "$SLOW_UP" <<'PY' || die "could not make the test copy of observability/nginx/nginx.conf"
import os, re, sys

src, scratch, port, slow_port, status_port, api, dead, slow_up = sys.argv[1:]
conf = open(src).read()

def sub(pattern, repl, expected, flags=re.M):
    """Every change must apply exactly as often as expected: a change of nginx.conf that this
    copy no longer matches fails here, not silently later."""
    global conf
    conf, n = re.subn(pattern, repl, conf, flags=flags)
    if n not in (expected if isinstance(expected, tuple) else (expected,)):
        sys.exit(f"{pattern!r} matched {n} times in nginx.conf, expected {expected}")

sub(r"^worker_processes .*;$", "worker_processes 1;", 1)
sub(r"^error_log .*;$", f"error_log {scratch}/error.log notice;", 1)
sub(r"^pid .*;$", f"pid {scratch}/nginx.pid;", 1)
sub(r"server app-1:8080", f"server 127.0.0.1:{api}", 1)
sub(r"server app-[23]:8080", f"server 127.0.0.1:{dead}", 2)
sub(r"listen 80;", f"listen 127.0.0.1:{port};", 1)
sub(r"listen 8081;", f"listen 127.0.0.1:{status_port};", (0, 1))
sub(r"/var/log/nginx/balancer/", f"{scratch}/", 1)
sub(r"proxy_read_timeout 30s;", "proxy_read_timeout 2s;", 1)
temp = "".join(f"    {kind}_temp_path {scratch}/{kind}_temp;\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
sub(r"^http \{\n", "http {\n" + temp, 1)
if os.getuid() == 0:
    # As root nginx would switch its worker to `nobody`, which cannot enter the scratch directory.
    conf = "user root;\n" + conf

# The balancer's location block, copied as it is into a server in front of the late upstream.
start = conf.index("proxy_pass http://tasklight;")
begin = conf.rindex("location / {", 0, start)
depth, i = 0, begin
while True:
    if conf[i] == "{":
        depth += 1
    elif conf[i] == "}":
        depth -= 1
        if depth == 0:
            break
    i += 1
location = conf[begin:i + 1].replace("proxy_pass http://tasklight;", "proxy_pass http://late;")
end = conf.rstrip().rindex("}")
conf = (conf[:end] + f"""
    # Added by observability/check-balancer-logs.sh: the same location in front of an upstream
    # that answers after proxy_read_timeout (504).
    upstream late {{
        server 127.0.0.1:{slow_up};
    }}
    server {{
        listen 127.0.0.1:{slow_port};
        {location}
    }}
}}
""")
open(f"{scratch}/nginx.conf", "w").write(conf)
PY
nginx -t -q -p "$SCRATCH" -c "$SCRATCH/nginx.conf" -e "$SCRATCH/error.log" || die "nginx rejected the test copy ($SCRATCH/nginx.conf)"
nginx -p "$SCRATCH" -c "$SCRATCH/nginx.conf" -e "$SCRATCH/error.log" -g 'daemon off;' >"$SCRATCH/nginx.out" 2>&1 &
NGINX_PID=$!
track_helper "$NGINX_PID"
wait_http "http://127.0.0.1:$NGINX_PORT/health/live" "$NGINX_PID" 10 nginx "$SCRATCH/error.log"

say "mtail on nginx's access log, metrics on 127.0.0.1:$MTAIL_PORT"
mtail --progs "$REPO/observability/mtail" --logs "$SCRATCH/access.log" --address 127.0.0.1 \
    --port "$MTAIL_PORT" --emit_prog_label=false --logtostderr >"$SCRATCH/mtail.out" 2>&1 &
track_helper $!
wait_http "http://127.0.0.1:$MTAIL_PORT/metrics" $! 10 mtail "$SCRATCH/mtail.out"

say "Prometheus on 127.0.0.1:$PROM_PORT: job nginx-log (mtail), the rule files"
{
    echo "global:"
    echo "  scrape_interval: 1s"
    echo "  scrape_timeout: 1s"
    echo "  evaluation_interval: 1s"
    echo "rule_files:"
    for f in "$REPO"/observability/prometheus/rules/*.yml; do
        echo "  - '$f'"
    done
    echo "scrape_configs:"
    echo "  - job_name: nginx-log"
    echo "    static_configs:"
    echo "      - targets: ['127.0.0.1:$MTAIL_PORT']"
} >"$SCRATCH/prometheus.yml"
promtool check config "$SCRATCH/prometheus.yml" >/dev/null || die "the generated Prometheus config is invalid"
prometheus --config.file="$SCRATCH/prometheus.yml" --storage.tsdb.path="$SCRATCH/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$SCRATCH/prometheus.out" 2>&1 &
track_helper $!
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" $! 30 Prometheus "$SCRATCH/prometheus.out"

say "requests, then every answer looked up by its request id"
python3 "$REPO/observability/balancer-check/check.py" \
    --nginx "http://127.0.0.1:$NGINX_PORT" \
    --late-nginx "http://127.0.0.1:$SLOW_NGINX_PORT" \
    --instance-pid "$INSTANCE_PID" \
    --instance-api "127.0.0.1:$API" \
    --dead "127.0.0.1:$DEAD" \
    --late "127.0.0.1:$SLOW_UP" \
    --nginx-log "$SCRATCH/access.log" \
    --nginx-stdout "$SCRATCH/nginx.out" \
    --instance-log "$SCRATCH/instance.log" \
    --mtail "http://127.0.0.1:$MTAIL_PORT" \
    --prometheus "http://127.0.0.1:$PROM_PORT" \
    --repo "$REPO"
