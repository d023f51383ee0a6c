# shellcheck shell=bash
# dashboards against a real Prometheus; k6 smoke through nginx over three instances
ensure_base_tools
ensure_release_binary
need prometheus prometheus
need promtool prometheus
need nginx nginx
need prometheus-postgres-exporter prometheus-postgres-exporter
need prometheus-redis-exporter prometheus-redis-exporter
need prometheus-nginx-exporter prometheus-nginx-exporter
ensure_venv k6
PATH="$VENV/bin:$PATH" BIN="$BIN" observability/check-dashboards.sh ||
    die "a dashboard or rule expression failed against Prometheus, or a LogQL query uses an unknown label or field (above)"
PATH="$VENV/bin:$PATH" BIN="$BIN" loadtests/run-local.sh smoke ||
    die "the k6 smoke run through nginx failed its thresholds (above)"
