# shellcheck shell=bash
# operations kit: compose file, nginx config, log shipper, Prometheus rules and alert tests, alert delivery, Kubernetes manifests
need python3 python3
need nginx nginx
need docker-compose docker-compose
need promtool prometheus
need prometheus prometheus
need amtool prometheus-alertmanager
need prometheus-alertmanager prometheus-alertmanager
need curl curl
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
observability/check-stack.sh || die "the compose stack's configuration is invalid (above)"
observability/check-prometheus.sh || die "promtool rejected the config or rules, or an alert test failed (above)"
# Alert delivery: amtool check-config, a route test per alerting rule, and end to end (real
# Prometheus and Alertmanager, two instances of the release binary stopped in turn, a webhook receiver).
ensure_release_binary
BIN="$BIN" observability/check-alerting.sh ||
    die "the Alertmanager config, a route, the inhibition or the end-to-end delivery failed (above)"
# Kubernetes: render, validate (1.31 schemas), check against the service, checkov (deploy/kubernetes/README.md).
need kubectl kubectl
ensure_venv checkov kubernetes-validate
PATH="$VENV/bin:$PATH" deploy/kubernetes/check.sh ||
    die "the Kubernetes manifests failed a check: render, schema, service match, sync of the rules or checkov (above)"
