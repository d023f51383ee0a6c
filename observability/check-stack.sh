#!/usr/bin/env bash
# Checks of the compose stack that need no Docker engine:
#   1. docker-compose config    (Debian's docker-compose v1 validates the file)
#   2. nginx -t                 on a copy of observability/nginx/nginx.conf whose upstreams point
#                               at 127.0.0.1 (the compose service names do not resolve here)
#   3. the log shipper's labels are exactly service, instance_id and level, and request_id and
#      trace_id go to structured metadata, never labels; nginx's JSON access log has every field
#      the shipper reads (service "nginx", instance_id, level, request_id, trace_id, timestamp),
#      its container is labelled for the shipper, and mtail reads its log file for Prometheus
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
    observability/nginx/nginx.conf |
    sed -E 's#/var/log/nginx/balancer/#'"$scratch"'/#' >"$scratch/nginx.conf"
grep -q 'server 127.0.0.1:18081' "$scratch/nginx.conf" || fail "the upstream rewrite did not apply"
nginx -t -p "$scratch" -c "$scratch/nginx.conf" || fail "nginx -t failed"
echo "nginx -t: ok"

echo "== nginx's access log: the fields the log shipper and mtail read"
python3 - <<'PY'
import json, re, sys, pathlib, yaml

def fail(message):
    sys.exit(f"check-stack: {message}")

conf = pathlib.Path("observability/nginx/nginx.conf").read_text()
match = re.search(r"log_format\s+json_access\s+escape=json\s+((?:'[^']*'\s*)+);", conf)
if not match:
    fail("nginx.conf has no `log_format json_access escape=json '...'`")
template = "".join(re.findall(r"'([^']*)'", match.group(1)))
# Every variable filled with a sample value (a number where the format writes it bare), then the
# line must be one JSON object.
line = re.sub(r"\$([a-z_]+)", lambda m: "1" if template[m.end():m.end() + 1] != '"' else "x", template)
try:
    fields = json.loads(line)
except ValueError as err:
    fail(f"log_format json_access does not make a JSON object: {err}\n  {line}")
for name, value in (("service", "$nginx"), ("instance_id", "$hostname"), ("level", "$tl_level"),
                    ("request_id", "$tl_request_id"), ("trace_id", "$tl_trace_id"),
                    ("timestamp", "$time_iso8601"), ("status", "$status")):
    if name not in fields:
        fail(f"nginx's access log has no `{name}` field")
    if value != "$nginx" and f'"{name}":"{value}"' not in template and f'"{name}":{value}' not in template:
        fail(f"nginx's access log field `{name}` is not {value}")
if '"service":"nginx"' not in template:
    fail('nginx\'s access log must say "service":"nginx"')
# The shipper reads these keys of every line (stage.json): nginx's lines must have them all.
alloy = pathlib.Path("observability/alloy/config.alloy").read_text()
json_stage = re.search(r"stage\.json\s*\{\s*expressions\s*=\s*\{([^}]*)\}", alloy)
read = set(re.findall(r'=\s*"([a-z_]+)"', json_stage.group(1))) if json_stage else set()
if not read or read - set(fields):
    fail(f"the shipper reads {sorted(read - set(fields))}, which nginx's access log lacks")
for log in re.findall(r"^\s*access_log\s+(\S+)\s+(\S+?);", conf, re.M):
    if log[0] != "off" and log[1] != "json_access":
        fail(f"access_log {log[0]} uses format {log[1]}, not json_access")
# The request id sent to the instances is the one logged.
if "proxy_set_header X-Request-Id $tl_request_id;" not in conf:
    fail("nginx must send the instances the request id it logs ($tl_request_id)")

compose = yaml.safe_load(pathlib.Path("docker-compose.yml").read_text())
nginx = compose["services"]["nginx"]
if str((nginx.get("labels") or {}).get("logs.tasklight")) != "true":
    fail("the nginx service needs the label logs.tasklight: \"true\" (the shipper reads only those)")
mtail = compose["services"].get("mtail")
if not mtail:
    fail("docker-compose.yml has no mtail service (nginx's access log as Prometheus counters)")
logs_dir = "/var/log/nginx/balancer"
shared = {v.split(":")[0] for v in nginx.get("volumes", []) if v.split(":")[1] == logs_dir}
if not shared or not any(v.split(":")[0] in shared for v in mtail.get("volumes", [])):
    fail(f"nginx's {logs_dir} must be a volume the mtail service mounts too")
prom = yaml.safe_load(pathlib.Path("observability/prometheus/prometheus.yml").read_text())
jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
targets = [t for c in jobs.get("nginx-log", {}).get("static_configs", []) for t in c["targets"]]
if targets != ["mtail:3903"]:
    fail(f"Prometheus job nginx-log must scrape mtail:3903, scrapes {targets}")
print(f"nginx's access log: {len(fields)} fields, {', '.join(fields)}; labelled for the shipper; "
      f"read by mtail, scraped as job nginx-log")
PY

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
