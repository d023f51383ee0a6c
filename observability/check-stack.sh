#!/usr/bin/env bash
# Checks of the compose stack that need no Docker engine:
#   1. docker-compose config    (Debian's docker-compose v1 validates the file)
#   2. nginx -t                 on a copy of observability/nginx/nginx.conf whose upstreams point
#                               at 127.0.0.1 (the compose service names do not resolve here)
#   3. the log shipper's labels are exactly service, instance_id and level, and request_id and
#      trace_id go to structured metadata, never labels
#   4. every file the compose file mounts exists, and Grafana's datasource uids are the ones the
#      dashboards use
# Usage: observability/check-stack.sh   (needs docker-compose, nginx, python3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
    echo "check-stack: $*" >&2
    exit 1
}
for tool in docker-compose nginx python3; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

echo "== docker-compose config"
docker-compose -f docker-compose.yml config -q
services=$(docker-compose -f docker-compose.yml config --services | sort | tr '\n' ' ')
echo "services: $services"
for needed in app-1 app-2 app-3 nginx postgres redis prometheus grafana loki alloy jaeger \
    postgres-exporter redis-exporter nginx-exporter \
    alertmanager alert-receiver; do
    [[ " $services " == *" $needed "* ]] || fail "docker-compose.yml has no service $needed"
done

echo "== nginx -t (upstreams pointed at 127.0.0.1)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sed -E 's/server app-([0-9]):8080/server 127.0.0.1:1808\1/; s#^pid .*#pid '"$scratch"'/nginx.pid;#; s#^error_log .*#error_log '"$scratch"'/error.log notice;#' \
    observability/nginx/nginx.conf >"$scratch/nginx.conf"
grep -q 'server 127.0.0.1:18081' "$scratch/nginx.conf" || fail "the upstream rewrite did not apply"
nginx -t -p "$scratch" -c "$scratch/nginx.conf" || fail "nginx -t failed"
echo "nginx -t: ok"

echo "== log shipper labels, mounts, datasource uids"
python3 - <<'PY'
import re, sys, yaml, pathlib

def fail(message):
    sys.exit(f"check-stack: {message}")

alloy = pathlib.Path("observability/alloy/config.alloy").read_text()
def block(name):
    match = re.search(name + r"\s*\{\s*values\s*=\s*(\{[^}]*\}|\[[^\]]*\])", alloy)
    if not match:
        fail(f"no {name} block in config.alloy")
    return set(re.findall(r'"?([a-z_]+)"?\s*=|"([a-z_]+)"', match.group(1)))
def keys(name):
    return {a or b for a, b in block(name)}
labels = keys("stage.labels")
kept = keys("stage.label_keep")
metadata = keys("stage.structured_metadata")
if labels != {"service", "instance_id", "level"} or kept != labels:
    fail(f"shipper labels must be service, instance_id, level; found {sorted(labels)} kept {sorted(kept)}")
if not {"request_id", "trace_id"} <= metadata or metadata & labels:
    fail(f"request_id and trace_id must be structured metadata only; found {sorted(metadata)}")
print(f"shipper labels: {sorted(labels)}; structured metadata: {sorted(metadata)}")

compose = yaml.safe_load(pathlib.Path("docker-compose.yml").read_text())
for name, service in compose["services"].items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("./") and not pathlib.Path(source).exists():
            fail(f"service {name} mounts {source}, which does not exist")
print("every mounted file exists")

sources = yaml.safe_load(pathlib.Path("observability/grafana/provisioning/datasources/datasources.yml").read_text())
uids = {d["uid"] for d in sources["datasources"]}
used = set()
for path in pathlib.Path("dashboards").glob("*.json"):
    used |= set(re.findall(r'"uid"\s*:\s*"([^"$]+)"', path.read_text()))
datasource_refs = {u for u in used if u in {"prometheus", "loki", "jaeger"}}
if datasource_refs - uids:
    fail(f"dashboards use datasource uids {sorted(datasource_refs - uids)} that are not provisioned")
print(f"datasource uids provisioned: {sorted(uids)}; used by dashboards: {sorted(datasource_refs)}")
PY
echo "check-stack: ok"
