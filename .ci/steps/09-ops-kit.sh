# shellcheck shell=bash
# operations kit: compose file, nginx config, log shipper, Prometheus rules and alert tests, Kubernetes manifests
need python3 python3
need nginx nginx
need docker-compose docker-compose
need promtool prometheus
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
observability/check-stack.sh || die "the compose stack's configuration is invalid (above)"
observability/check-prometheus.sh || die "promtool rejected the config or rules, or an alert test failed (above)"
# Kubernetes: render, validate (1.31 schemas), check against the service, checkov (deploy/kubernetes/README.md).
need kubectl kubectl
ensure_venv checkov kubernetes-validate
PATH="$VENV/bin:$PATH" deploy/kubernetes/check.sh ||
    die "the Kubernetes manifests failed a check: render, schema, service match, sync of the rules or checkov (above)"
