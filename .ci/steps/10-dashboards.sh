# shellcheck shell=bash
# dashboards against a real Prometheus; the load balancer's logs, mtail and SLO; k6 smoke through nginx over three instances
ensure_base_tools
ensure_release_binary
need prometheus prometheus
need promtool prometheus
need nginx nginx
need prometheus-postgres-exporter prometheus-postgres-exporter
need prometheus-redis-exporter prometheus-redis-exporter
need prometheus-nginx-exporter prometheus-nginx-exporter
need mtail mtail
ensure_venv k6
PATH="$VENV/bin:$PATH" BIN="$BIN" observability/check-dashboards.sh ||
    die "a dashboard or rule expression failed against Prometheus, or a LogQL query uses an unknown label or field (above)"
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
BIN="$BIN" observability/check-balancer-logs.sh ||
    die "the load balancer's view failed: nginx's JSON log, the request id of its own 502/504, mtail's counters or the balancer SLO's rules against a real nginx, mtail and Prometheus (above)"
PATH="$VENV/bin:$PATH" BIN="$BIN" loadtests/run-local.sh smoke ||
    die "the k6 smoke run through nginx failed its thresholds (above)"
