#!/usr/bin/env bash
# Checks alert delivery (observability/alertmanager/alertmanager.yml) with the real tools:
#
#   1. amtool check-config on the config (templates loaded from the repository), and on a copy
#      with the commented PagerDuty/Slack examples (`#| ` lines) switched on; both templates of
#      templates/tasklight.tmpl render; Prometheus's config sends to alertmanager:9093 and compose
#      runs that service with this config
#   2. amtool config routes test --verify.receivers for EVERY alerting rule of
#      observability/prometheus/rules/*.yml, with its own labels (alertname, severity, slo and
#      windows): severity page must reach receiver `page`, ticket `ticket`; plus the fallback
#   3. end to end, on 127.0.0.1 only: the webhook receiver (observability/alertmanager/
#      webhook-receiver.py), a real Alertmanager (prometheus-alertmanager) running the checked-in
#      config with its webhook URLs pointed at that receiver, a real Prometheus evaluating the
#      checked-in rule files (every second) and scraping two real instances of the release binary
#      (SQLite) labelled instance_id app-1 and app-2, as in observability/prometheus/prometheus.yml:
#        - stop app-1: TasklightInstanceDown (ticket) must reach receiver `ticket`, firing, with
#          instance_id app-1 and its runbook annotation; the notification template renders it;
#        - stop app-2: TasklightAllInstancesDown must reach receiver `page`, and TasklightInstanceDown
#          of app-2 must be inhibited by it (Alertmanager's API: status.inhibitedBy) and never
#          notified;
#        - the SLO inhibition (amtool cannot test inhibitions): a page-level and a ticket-level burn
#          of one SLO, and a ticket-level burn of another, posted to Alertmanager's API: only the
#          ticket of the paging SLO is inhibited, and only it is never notified.
#
#   What differs from production, so that the run takes about half a minute: Prometheus scrapes
#   and evaluates every second (5 s and 15 s in compose); in the scratch copy of the rules the
#   `for:` of TasklightInstanceDown and TasklightAllInstancesDown is 2s instead of 1m; in the
#   scratch copy of the Alertmanager config every group_wait is divided by 30 (page 30s -> 1s,
#   ticket 2m -> 4s: their order, which the inhibition relies on, is kept) and the webhook URLs
#   point at the local receiver. Everything else is the checked-in files as they are.
#
# Usage:   BIN=/path/to/tasklight observability/check-alerting.sh
# Needs:   amtool and prometheus-alertmanager (apt-get install -y prometheus-alertmanager),
#          prometheus and promtool (apt-get install -y prometheus), python3 with yaml, curl, and the
#          release binary: BIN (default ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight).
# Exit:    0 when every check passed, 1 otherwise; everything it started is stopped on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
START=$SECONDS
ME=check-alerting
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$REPO/.ci/lib.sh"

# The environment of the machine must not change what the instances see.
scrub_env

say() { echo "== [$(date -u +%H:%M:%S)] $*"; }

for tool in amtool prometheus-alertmanager; do
    require "$tool" "apt-get install -y prometheus-alertmanager"
done
for tool in prometheus promtool; do
    require "$tool" "apt-get install -y prometheus"
done
require python3
require curl
python3 -c 'import yaml' 2>/dev/null || die "python3 needs yaml (apt-get install -y python3-yaml)"

AM_DIR=$REPO/observability/alertmanager
CONFIG=$AM_DIR/alertmanager.yml
TEMPLATES=$AM_DIR/templates
RECEIVER=$AM_DIR/webhook-receiver.py
shopt -s nullglob
RULE_FILES=("$REPO"/observability/prometheus/rules/*.yml)
shopt -u nullglob
((${#RULE_FILES[@]} > 0)) || die "no rule files in observability/prometheus/rules"
for f in "$CONFIG" "$RECEIVER"; do
    [[ -f $f ]] || die "$f is missing"
done

SCRATCH=""
scratch_dir SCRATCH alert-check
# shellcheck disable=SC2317  # run on exit, before the clean-up removes the scratch directory
diagnose() {
    if [[ $1 -ne 0 ]]; then
        for f in alertmanager.out prometheus.out receiver.err; do
            [[ -s $SCRATCH/$f ]] || continue
            echo "--- last lines of $f:" >&2
            tail -n 15 "$SCRATCH/$f" >&2
        done
        if [[ -s $SCRATCH/notifications.jsonl ]]; then
            echo "--- notifications received (alertname, status, receiver):" >&2
            python3 "$SCRATCH/notifications.py" "$SCRATCH/notifications.jsonl" list >&2 || true
        fi
    fi
}
# shellcheck disable=SC2317  # run on exit
verdict() {
    echo "check-alerting: $([[ $1 -eq 0 ]] && echo passed || echo FAILED) in $((SECONDS - START))s"
}
on_exit diagnose verdict

# ---------------------------------------------------------------------------------------------------
# Helpers in Python: the alerting rules, and the notifications the receiver wrote.

cat >"$SCRATCH/notifications.py" <<'PY'
"""notifications.py FILE list
   notifications.py FILE find ALERTNAME RECEIVER INSTANCE_ID|- : the first notification (line) to
       RECEIVER, status firing, holding a firing ALERTNAME (with instance_id INSTANCE_ID unless -)
       whose runbook annotation is not empty; prints its line number; exit 1 when there is none
   notifications.py FILE count ALERTNAME [LABEL=VALUE...] : how many notifications hold a firing
       ALERTNAME with those labels (any receiver)"""
import json, sys

path, command, *args = sys.argv[1:]
try:
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
except FileNotFoundError:
    lines = []

def alerts(payload, name, wanted):
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        if alert.get("status") == "firing" and labels.get("alertname") == name and all(
            labels.get(k) == v for k, v in wanted.items()
        ):
            yield alert

if command == "list":
    for n, p in enumerate(lines, 1):
        names = sorted({(a["labels"].get("alertname"), a["labels"].get("instance_id", "-"), a.get("status")) for a in p.get("alerts", [])})
        print(f"  {n}: receiver={p.get('receiver')} status={p.get('status')} alerts={names}")
elif command == "find":
    name, receiver, instance = args
    wanted = {} if instance == "-" else {"instance_id": instance}
    for n, p in enumerate(lines, 1):
        if p.get("receiver") == receiver and p.get("status") == "firing":
            for alert in alerts(p, name, wanted):
                if (alert.get("annotations", {}).get("runbook") or "").strip():
                    print(n)
                    sys.exit(0)
    sys.exit(1)
elif command == "count":
    name, *pairs = args
    wanted = dict(pair.split("=", 1) for pair in pairs)
    print(sum(1 for p in lines if any(alerts(p, name, wanted))))
else:
    sys.exit(__doc__)
PY

# rules.py RULE_FILE...: one line per alerting rule: "ALERTNAME LABEL=VALUE..." (its static labels).
cat >"$SCRATCH/rules.py" <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        for group in (yaml.safe_load(f) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    labels = rule.get("labels") or {}
                    print(" ".join([rule["alert"]] + [f"{k}={v}" for k, v in sorted(labels.items())]))
PY

# ---------------------------------------------------------------------------------------------------
say "1. amtool check-config (version: $(amtool --version 2>&1 | head -n 1))"
grep -q '^  - /etc/alertmanager/templates/\*\.tmpl$' "$CONFIG" ||
    die "$CONFIG no longer loads /etc/alertmanager/templates/*.tmpl; update this script"
# The templates from the repository instead of the container's path, so that they are loaded too.
sed "s#/etc/alertmanager/templates/#$TEMPLATES/#" "$CONFIG" >"$SCRATCH/checked.yml"
amtool check-config "$SCRATCH/checked.yml" | tee "$SCRATCH/check-config.out" ||
    die "amtool check-config rejected $CONFIG"
templates_found=$(sed -n 's/^ - \([0-9][0-9]*\) templates$/\1/p' "$SCRATCH/check-config.out")
templates_here=$(find "$TEMPLATES" -name '*.tmpl' | wc -l)
[[ ${templates_found:-0} -eq $templates_here && $templates_here -gt 0 ]] ||
    die "check-config loaded ${templates_found:-no} templates, $TEMPLATES has $templates_here"
inhibit_rules=$(sed -n 's/^ - \([0-9][0-9]*\) inhibit rules$/\1/p' "$SCRATCH/check-config.out")

# The commented examples (`#| ` lines), switched on: they must be a valid config too.
examples=$(grep -c '^ *#| ' "$CONFIG" || true)
((examples > 0)) || die "no commented receiver examples (#| lines) in $CONFIG"
sed -E 's/^( *)#\| ?/\1/' "$SCRATCH/checked.yml" >"$SCRATCH/examples.yml"
amtool check-config "$SCRATCH/examples.yml" >"$SCRATCH/examples.out" ||
    { cat "$SCRATCH/examples.out" >&2; die "the PagerDuty/Slack examples of $CONFIG, uncommented, are not a valid config"; }
for kind in pagerduty_configs slack_configs; do
    grep -q "^ *$kind:" "$SCRATCH/examples.yml" || die "no $kind example in $CONFIG"
done
echo "examples: $examples commented lines (PagerDuty, Slack), uncommented: valid"

# Both templates render (against amtool's example data here; against a real notification below).
for name in tasklight.title tasklight.text; do
    amtool template render --template.glob="$TEMPLATES/*.tmpl" --template.text="{{ template \"$name\" . }}" \
        >"$SCRATCH/render.out" 2>&1 || { cat "$SCRATCH/render.out" >&2; die "template $name does not render"; }
done
echo "templates tasklight.title and tasklight.text render"

# The wiring: Prometheus sends to alertmanager:9093; compose runs it with this config.
python3 - "$REPO" <<'PY' || die "the wiring between Prometheus, compose and this config is incomplete (above)"
import sys, pathlib, yaml
repo = pathlib.Path(sys.argv[1])
prom = yaml.safe_load((repo / "observability/prometheus/prometheus.yml").read_text())
targets = [t for am in (prom.get("alerting") or {}).get("alertmanagers", [])
           for sc in am.get("static_configs", []) for t in sc.get("targets", [])]
if "alertmanager:9093" not in targets:
    sys.exit(f"observability/prometheus/prometheus.yml: alerting.alertmanagers has no target alertmanager:9093 (found {targets})")
compose = yaml.safe_load((repo / "docker-compose.yml").read_text())
am = compose["services"].get("alertmanager")
if not am:
    sys.exit("docker-compose.yml has no alertmanager service")
if not any(v.startswith("./observability/alertmanager/alertmanager.yml:") for v in am.get("volumes", [])):
    sys.exit("the compose alertmanager service does not mount observability/alertmanager/alertmanager.yml")
image = am.get("image", "")
if ":" not in image or image.endswith(":latest"):
    sys.exit(f"the compose alertmanager image is not pinned: {image!r}")
print(f"wiring: Prometheus -> {', '.join(targets)}; compose service alertmanager ({image}) mounts the config")
PY

# ---------------------------------------------------------------------------------------------------
say "2. amtool config routes test, every alerting rule"
python3 "$SCRATCH/rules.py" "${RULE_FILES[@]}" >"$SCRATCH/rules.txt"
rules=0
declare -A NAMES=() COMBOS=()
while read -r name labels; do
    severity=$(grep -o 'severity=[^ ]*' <<<"$labels" | cut -d= -f2 || true)
    case $severity in
    page) expected=page ;;
    ticket) expected=ticket ;;
    *) die "alert $name has severity '${severity}', not page or ticket: which receiver should it reach?" ;;
    esac
    # shellcheck disable=SC2086  # the labels are separate arguments
    # (stderr: amtool's warning that --config.file wins over --alertmanager.url)
    got=$(amtool config routes test --config.file="$SCRATCH/checked.yml" --verify.receivers="$expected" \
        alertname="$name" job=tasklight $labels 2>"$SCRATCH/amtool.err") ||
        die "alert $name ($labels) is routed to '$(echo $got)', expected '$expected'"
    [[ $got == "$expected" ]] || die "alert $name ($labels): amtool answered '$got', expected '$expected'"
    printf '  %-40s %-66s -> %s\n' "$name" "$labels" "$got"
    rules=$((rules + 1))
    NAMES[$name]=1
    COMBOS["$name $severity"]=1
done <"$SCRATCH/rules.txt"
((rules > 0)) || die "no alerting rules found in ${RULE_FILES[*]}"
# The fallback: no or an unknown severity becomes a ticket.
for labels in "alertname=SomethingNew" "alertname=SomethingNew severity=critical"; do
    # shellcheck disable=SC2086
    got=$(amtool config routes test --config.file="$SCRATCH/checked.yml" --verify.receivers=ticket $labels 2>"$SCRATCH/amtool.err") ||
        die "an alert with labels $labels is routed to '$got', expected the fallback 'ticket'"
done
echo "route tests: $rules alerting rules (${#NAMES[@]} alert names, ${#COMBOS[@]} name+severity pairs) routed as their severity says; fallback (no or unknown severity) -> ticket"

# ---------------------------------------------------------------------------------------------------
say "3. end to end: receiver, Alertmanager, Prometheus, two instances"
require_bin
read -r RECV_PORT AM_PORT PROM_PORT API_1 ADMIN_1 API_2 ADMIN_2 <<<"$(free_ports 7)"
NOTES=$SCRATCH/notifications.jsonl
: >"$NOTES"

# The scratch Alertmanager config: webhooks to the local receiver, every group_wait / 30.
python3 - "$SCRATCH/checked.yml" "$SCRATCH/alertmanager.yml" "http://127.0.0.1:$RECV_PORT" <<'PY' ||
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
text, urls = re.subn(r"http://alert-receiver:9095", sys.argv[3], text)
def scaled(match):
    value, unit = int(match.group(2)), match.group(3)
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    return f"{match.group(1)}{max(1, seconds // 30)}s"
text, waits = re.subn(r"^(\s*group_wait:\s*)(\d+)([smh])\s*$", scaled, text, flags=re.M)
if urls < 2 or waits < 3:
    sys.exit(f"rewrote {urls} receiver URLs and {waits} group_waits; expected at least 2 and 3")
open(sys.argv[2], "w", encoding="utf-8").write(text)
print(f"scratch Alertmanager config: {urls} webhook URLs -> {sys.argv[3]}, {waits} group_waits divided by 30")
PY
    die "could not write the scratch Alertmanager config"
amtool check-config "$SCRATCH/alertmanager.yml" >/dev/null || die "the scratch Alertmanager config is invalid"
grep -E '^\s*group_wait:' "$SCRATCH/alertmanager.yml" | tr -s ' ' | sed 's/^/  /'

# The scratch rules: the `for:` of the two instance alerts shortened to 2s.
mkdir -p "$SCRATCH/rules"
python3 - "$SCRATCH/rules" "${RULE_FILES[@]}" <<'PY' || die "could not write the scratch rule files"
import os, sys, yaml
out, shortened = sys.argv[1], 0
for path in sys.argv[2:]:
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if rule.get("alert") in ("TasklightInstanceDown", "TasklightAllInstancesDown"):
                rule["for"] = "2s"
                shortened += 1
    with open(os.path.join(out, os.path.basename(path)), "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
if shortened != 2:
    sys.exit(f"found {shortened} of the 2 instance alerts in the rule files")
print("scratch rules: for: of TasklightInstanceDown and TasklightAllInstancesDown set to 2s")
PY
{
    echo "global:"
    echo "  scrape_interval: 1s"
    echo "  scrape_timeout: 1s"
    echo "  evaluation_interval: 1s"
    echo "rule_files:"
    echo "  - '$SCRATCH/rules/*.yml'"
    echo "alerting:"
    echo "  alertmanagers:"
    echo "    - static_configs:"
    echo "        - targets: ['127.0.0.1:$AM_PORT']"
    echo "scrape_configs:"
    echo "  # As in observability/prometheus/prometheus.yml: each target carries its instance_id."
    echo "  - job_name: tasklight"
    echo "    static_configs:"
    echo "      - targets: ['127.0.0.1:$ADMIN_1']"
    echo "        labels: {instance_id: app-1}"
    echo "      - targets: ['127.0.0.1:$ADMIN_2']"
    echo "        labels: {instance_id: app-2}"
} >"$SCRATCH/prometheus.yml"
promtool check config "$SCRATCH/prometheus.yml" >/dev/null || die "the scratch Prometheus config is invalid"

python3 "$RECEIVER" "127.0.0.1:$RECV_PORT" "$NOTES" 2>"$SCRATCH/receiver.err" &
track_helper $!
wait_http "http://127.0.0.1:$RECV_PORT/" $! 15 "webhook receiver" "$SCRATCH/receiver.err"
echo "webhook receiver on 127.0.0.1:$RECV_PORT, writing $NOTES"

prometheus-alertmanager --config.file="$SCRATCH/alertmanager.yml" --storage.path="$SCRATCH/am-data" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
    --web.external-url="http://127.0.0.1:$AM_PORT" --log.level=warn >"$SCRATCH/alertmanager.out" 2>&1 &
track_helper $!
wait_http "http://127.0.0.1:$AM_PORT/-/ready" $! 20 Alertmanager "$SCRATCH/alertmanager.out"
echo "Alertmanager on 127.0.0.1:$AM_PORT"

# Two instances, each on its own SQLite database in its own directory; no drain delay, so that a
# stop is a stop.
JWT=$(random_secret)
declare -A PIDS=()
for inst in app-1 app-2; do
    if [[ $inst == app-1 ]]; then api=$API_1 admin=$ADMIN_1; else api=$API_2 admin=$ADMIN_2; fi
    mkdir -p "$SCRATCH/$inst"
    spawn_server "$SCRATCH/$inst" "$SCRATCH/$inst/server.log" -i "PATH=$PATH" \
        "JWT_SECRET=$JWT" "INSTANCE_ID=$inst" "RUST_LOG=warn" "TASKLIGHT_DRAIN_DELAY_MS=0" \
        "TASKLIGHT_LISTEN=127.0.0.1:$api" "TASKLIGHT_ADMIN_LISTEN=127.0.0.1:$admin"
    PIDS[$inst]=$SERVER_PID
done
wait_http "http://127.0.0.1:$ADMIN_1/health/ready" "${PIDS[app-1]}" 30 "instance app-1" "$SCRATCH/app-1/server.log"
wait_http "http://127.0.0.1:$ADMIN_2/health/ready" "${PIDS[app-2]}" 30 "instance app-2" "$SCRATCH/app-2/server.log"
echo "instances app-1 (admin $ADMIN_1, pid ${PIDS[app-1]}) and app-2 (admin $ADMIN_2, pid ${PIDS[app-2]}) ready"

prometheus --config.file="$SCRATCH/prometheus.yml" --storage.tsdb.path="$SCRATCH/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$SCRATCH/prometheus.out" 2>&1 &
track_helper $!
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" $! 30 Prometheus "$SCRATCH/prometheus.out"
echo "Prometheus on 127.0.0.1:$PROM_PORT"

# prom_value QUERY: the value of the first sample of an instant query, empty when there is none.
prom_value() {
    curl -fsS --max-time 3 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' \
            2>/dev/null || true
}
# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.25 s until it succeeds; dies after SECONDS.
wait_until() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || die "$what: not within ${limit}s"
        sleep 0.25
    done
}
both_up() { [[ $(prom_value 'sum(up{job="tasklight"})') == 2 ]]; }
wait_until 30 "Prometheus scraping both instances (sum(up) == 2)" both_up
echo "Prometheus scrapes both instances (sum(up{job=\"tasklight\"}) == 2)"
[[ $(python3 "$SCRATCH/notifications.py" "$NOTES" count TasklightInstanceDown) == 0 ]] ||
    die "a TasklightInstanceDown was notified before any instance stopped"

delivered() { FOUND_LINE=$(python3 "$SCRATCH/notifications.py" "$NOTES" find "$@"); }

# --- one instance stops: a ticket ------------------------------------------------------------------
say "stopping app-1: TasklightInstanceDown (ticket) must reach receiver ticket"
T1=$(now)
stop_server "${PIDS[app-1]}"
wait_until 60 "TasklightInstanceDown for app-1 (firing, receiver ticket, with a runbook) at the webhook receiver" \
    delivered TasklightInstanceDown ticket app-1
D1=$(since "$T1")
echo "TasklightInstanceDown app-1 delivered to receiver ticket ${D1}s after the stop (notification $FOUND_LINE)"
sed -n "${FOUND_LINE}p" "$NOTES" >"$SCRATCH/instance-down.json"
python3 - "$SCRATCH/instance-down.json" <<'PY' || die "the TasklightInstanceDown notification is not as expected (above)"
import json, sys
p = json.load(open(sys.argv[1]))
alert = next(a for a in p["alerts"] if a["labels"]["alertname"] == "TasklightInstanceDown")
checks = {
    "receiver": (p["receiver"], "ticket"),
    "status": (p["status"], "firing"),
    "alert status": (alert["status"], "firing"),
    "alertname": (alert["labels"]["alertname"], "TasklightInstanceDown"),
    "instance_id": (alert["labels"].get("instance_id"), "app-1"),
    "severity": (alert["labels"].get("severity"), "ticket"),
    "job": (alert["labels"].get("job"), "tasklight"),
    "group labels": (p["groupLabels"], {"alertname": "TasklightInstanceDown", "instance_id": "app-1"}),
}
bad = [f"{k}: {got!r}, expected {want!r}" for k, (got, want) in checks.items() if got != want]
runbook = alert["annotations"].get("runbook", "")
if "docker compose logs" not in runbook or 'instance_id="app-1"' not in runbook:
    bad.append(f"runbook annotation not the rule's, rendered for app-1: {runbook!r}")
for key in ("summary", "description"):
    if not alert["annotations"].get(key):
        bad.append(f"no {key} annotation")
if bad:
    sys.exit("\n".join(bad))
print(f"  receiver={p['receiver']} status={p['status']} groupLabels={p['groupLabels']} labels={alert['labels']}")
print(f"  summary: {alert['annotations']['summary']}")
print(f"  runbook: {runbook[:110]}...")
PY
# The notification template (the PagerDuty/Slack examples' text) on this real notification.
amtool template render --template.glob="$TEMPLATES/*.tmpl" --template.data="$SCRATCH/instance-down.json" \
    --template.text='{{ template "tasklight.title" . }}{{ "\n" }}{{ template "tasklight.text" . }}' >"$SCRATCH/rendered.txt" ||
    die "the notification template does not render the real notification"
grep -q '^\[FIRING:1\] TasklightInstanceDown on app-1 (ticket)$' "$SCRATCH/rendered.txt" &&
    grep -q '^Runbook: Check the container: docker compose ps app-1' "$SCRATCH/rendered.txt" ||
    { cat "$SCRATCH/rendered.txt" >&2; die "the rendered notification lacks its title or runbook (above)"; }
echo "template tasklight.title/text on it: $(head -n 1 "$SCRATCH/rendered.txt") + summary, description, runbook"

# --- every instance stops: a page, and the second instance's ticket inhibited ----------------------
say "stopping app-2: TasklightAllInstancesDown (page) must reach receiver page; app-2's TasklightInstanceDown inhibited"
T2=$(now)
stop_server "${PIDS[app-2]}"
wait_until 60 "TasklightAllInstancesDown (firing, receiver page, with a runbook) at the webhook receiver" \
    delivered TasklightAllInstancesDown page -
D2=$(since "$T2")
echo "TasklightAllInstancesDown delivered to receiver page ${D2}s after the stop (notification $FOUND_LINE)"

# am_alerts FILTER...: Alertmanager's alerts (every state), as JSON.
am_alerts() {
    local args=() f
    for f in "$@"; do args+=(--data-urlencode "filter=$f"); done
    curl -fsS --max-time 3 -G "http://127.0.0.1:$AM_PORT/api/v2/alerts" "${args[@]}"
}
# inhibited_by ALERTNAME LABEL=VALUE [SOURCE_ALERTNAME SOURCE_LABEL=VALUE]: the alert is in
# Alertmanager, suppressed, and inhibitedBy holds the source alert's fingerprint.
inhibited_by() {
    local target source
    target=$(am_alerts "alertname=\"$1\"" "${2%%=*}=\"${2#*=}\"" 2>/dev/null) || return 1
    source=$(am_alerts "alertname=\"$3\"" "${4%%=*}=\"${4#*=}\"" 2>/dev/null) || return 1
    python3 - "$target" "$source" <<'PY'
import json, sys
target, source = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ok = (len(target) == 1 and len(source) == 1 and target[0]["status"]["state"] == "suppressed"
      and source[0]["fingerprint"] in target[0]["status"]["inhibitedBy"])
if ok:
    print(f"  {target[0]['labels']['alertname']} {dict((k, v) for k, v in target[0]['labels'].items() if k != 'alertname')}: "
          f"state {target[0]['status']['state']}, inhibitedBy {target[0]['status']['inhibitedBy']} "
          f"= {source[0]['labels']['alertname']} ({source[0]['fingerprint']})")
sys.exit(0 if ok else 1)
PY
}
wait_until 30 "TasklightInstanceDown of app-2 in Alertmanager, inhibited by TasklightAllInstancesDown" \
    inhibited_by TasklightInstanceDown instance_id=app-2 TasklightAllInstancesDown job=tasklight
T_INHIBITED=$SECONDS
inhibited_by TasklightInstanceDown instance_id=app-1 TasklightAllInstancesDown job=tasklight ||
    die "TasklightInstanceDown of app-1 is not inhibited by TasklightAllInstancesDown"
# Past the ticket route's (scaled) group_wait of 4s, with margin: no notification for app-2.
ticket_wait=$(awk '/matchers:.*severity="ticket"/ { t = 1 } t && /group_wait:/ { gsub(/[^0-9]/, "", $2); print $2; exit }' "$SCRATCH/alertmanager.yml")
sleep $((ticket_wait + 3))
n2=$(python3 "$SCRATCH/notifications.py" "$NOTES" count TasklightInstanceDown instance_id=app-2)
n1=$(python3 "$SCRATCH/notifications.py" "$NOTES" count TasklightInstanceDown instance_id=app-1)
[[ $n2 == 0 ]] || die "TasklightInstanceDown of app-2 was notified $n2 times although TasklightAllInstancesDown inhibits it"
[[ $n1 == 1 ]] || die "TasklightInstanceDown of app-1 was notified $n1 times; expected once (before the outage), then inhibited"
echo "TasklightInstanceDown notifications after $((SECONDS - T_INHIBITED))s of inhibition: app-2 $n2, app-1 $n1 (the one before the outage)"

# --- the SLO inhibition, with alerts posted to Alertmanager's API ---------------------------------
say "SLO inhibition: a page-level burn silences the ticket-level burn of the same SLO only"
python3 - "http://127.0.0.1:$AM_PORT" <<'PY' || die "could not post the SLO alerts to Alertmanager"
import datetime, json, sys, urllib.request
end = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)).isoformat()
def alert(name, severity, slo, long_window, short_window):
    return {"labels": {"alertname": name, "severity": severity, "slo": slo, "job": "tasklight",
                       "long_window": long_window, "short_window": short_window},
            "annotations": {"summary": f"synthetic {name} {severity} (check-alerting)", "runbook": "synthetic"},
            "endsAt": end}
body = [
    alert("TasklightAvailabilityBudgetBurn", "page", "availability", "1h", "5m"),
    alert("TasklightAvailabilityBudgetBurn", "ticket", "availability", "1d", "2h"),
    alert("TasklightReadLatencyBudgetBurn", "ticket", "read-latency", "1d", "2h"),
]
request = urllib.request.Request(f"{sys.argv[1]}/api/v2/alerts", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"}, method="POST")
urllib.request.urlopen(request, timeout=5).read()
PY
T3=$(now)
slo_inhibited() {
    local target source
    target=$(am_alerts 'alertname="TasklightAvailabilityBudgetBurn"' 'severity="ticket"') || return 1
    source=$(am_alerts 'alertname="TasklightAvailabilityBudgetBurn"' 'severity="page"') || return 1
    python3 -c '
import json, sys
t, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.exit(0 if len(t) == 1 and len(s) == 1 and s[0]["fingerprint"] in t[0]["status"]["inhibitedBy"] else 1)' "$target" "$source"
}
wait_until 15 "the availability ticket burn inhibited by the availability page burn" slo_inhibited
latency=$(am_alerts 'alertname="TasklightReadLatencyBudgetBurn"')
python3 -c '
import json, sys
a = json.loads(sys.argv[1])
sys.exit(0 if len(a) == 1 and a[0]["status"]["state"] == "active" and not a[0]["status"]["inhibitedBy"] else 1)' "$latency" ||
    die "the read-latency ticket burn is inhibited or missing, although only the availability SLO pages: $latency"
page=$(am_alerts 'alertname="TasklightAvailabilityBudgetBurn"' 'severity="page"')
python3 -c '
import json, sys
a = json.loads(sys.argv[1])
sys.exit(0 if len(a) == 1 and a[0]["status"]["state"] == "active" else 1)' "$page" ||
    die "the availability page burn is not active: $page"
echo "in Alertmanager: availability ticket burn suppressed by the availability page burn; read-latency ticket and availability page active"
# Notifications: the read-latency ticket arrives (after the ticket group_wait), the availability
# ticket never does.
wait_until 30 "the read-latency ticket burn at receiver ticket" delivered TasklightReadLatencyBudgetBurn ticket -
D3=$(since "$T3")
wait_until 15 "the availability page burn at receiver page" delivered TasklightAvailabilityBudgetBurn page -
sleep 1
n=$(python3 "$SCRATCH/notifications.py" "$NOTES" count TasklightAvailabilityBudgetBurn severity=ticket)
[[ $n == 0 ]] || die "the availability ticket burn was notified although the availability page burn inhibits it"
echo "notified: read-latency ticket (${D3}s after posting), availability page; availability ticket: 0"

# ---------------------------------------------------------------------------------------------------
say "summary"
echo "amtool check-config:   ok ($inhibit_rules inhibit rules, $templates_found template file(s); examples valid)"
echo "route tests:           $rules alerting rules, ${#NAMES[@]} alert names, ${#COMBOS[@]} name+severity pairs"
echo "end to end:            TasklightInstanceDown app-1 at receiver ticket ${D1}s after the stop;"
echo "                       TasklightAllInstancesDown at receiver page ${D2}s after the second stop;"
echo "                       TasklightInstanceDown app-2 inhibited (never notified); SLO ticket inhibited by its page"
echo "notifications:         $(wc -l <"$NOTES" | tr -d ' ') received"
