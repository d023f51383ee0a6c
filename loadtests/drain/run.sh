#!/usr/bin/env bash
# Drain under load: real nginx balances over three instances of the release binary (one PostgreSQL
# database, one Redis) while k6 sends a steady mix of reads and writes through it. At about 5 s
# instance A gets SIGTERM, exits and is started again on the same ports; at about 12 s instance B
# does the same. After the load, the instance whose webhook worker holds the subscription's lease is
# SIGKILLed and started again. A webhook subscription of the project sends every task.created event
# to a receiver (receiver.py). The run fails (non-zero exit) when any request failed, when the
# database lacks a task whose creation was acknowledged (or holds one that was not), when an
# acknowledged task's event never reached the receiver, or when a drained instance did not exit 0
# within drain delay + shutdown timeout + a margin, or did not log its shutdown phases.
#
#   BIN    the release binary (default ${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight)
#   K6     k6 (default: k6 on the PATH, else the one in CI's venv $CARGO_TARGET_DIR/ci-venv)
#   NGINX  nginx (default: nginx on the PATH, else /usr/sbin/nginx)
#   DRAIN_RATE  requests per second through nginx (default 200)
#   KEEP=1 keep the scratch directory (logs, nginx config, k6 summary) even when the run passes
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), Redis on 127.0.0.1:6379, nginx, k6,
# curl, psql and python3. Every process it starts and the database it creates are removed on exit;
# all traffic stays on 127.0.0.1; every wait is bounded.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ME=drain
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
. "$HERE/../../.ci/lib.sh"

DRAIN_DELAY_MS=2000
SHUTDOWN_TIMEOUT_MS=10000
# A drained instance must exit within drain delay + shutdown timeout + this margin (15 s in all).
EXIT_MARGIN_S=3
EXIT_LIMIT_S=$(((DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS) / 1000 + EXIT_MARGIN_S))
# Requests per second through nginx. Requests take 1-5 ms, so few are in flight when an instance
# stops: at 80/s none of 10 abrupt stops (4 SIGKILLs, 6 with no drain delay) cost a client a request
# (nginx retries refused connects and cut-off GETs); at 200/s 1 SIGKILL in 6 cost a POST (502).
RATE=${DRAIN_RATE:-200}
DURATION=20s     # the k6 scenario
DRAIN_A_AT=5     # seconds after k6 starts
DRAIN_B_AT=12
# A killed worker's lease: another instance takes its endpoint over this long after the kill.
WEBHOOK_LEASE_MS=3000
DELIVERY_LIMIT_S=30  # every acknowledged write's event must have arrived this long after k6 ends
K6_LIMIT_S=90    # k6 is killed if it has not finished by then (setup + 20 s + graceful stop fit easily)

cluster_require postgres

WORK=""
scratch_dir WORK drain
# shellcheck disable=SC2317  # run on exit
keep_work() {
    if [[ $1 -ne 0 || -n ${KEEP:-} ]]; then
        SCRATCH_KEEP=1
        echo "drain: logs, nginx config and k6 summary kept in $WORK" >&2
    fi
}
on_exit keep_work

psql_run() {
    psql -d "$PG_SERVER/$CLUSTER_DB" -X -v ON_ERROR_STOP=1 -qtA "$@"
}

# ---------------------------------------------------------------------------------------------------
# Ports, database, the three instances.

cluster_setup "$WORK" drain- a b c
log "scratch directory $WORK"
cluster_postgres drain
log "created database $CLUSTER_DB"
# The webhook receiver, and deliveries to it over loopback http.
RECEIVED="$WORK/webhooks-received.jsonl"
: >"$RECEIVED"
python3 "$HERE/receiver.py" "$RECEIVED" >"$WORK/receiver.port" 2>"$WORK/receiver.err" &
track_helper $!
for _ in $(seq 50); do [[ -s $WORK/receiver.port ]] && break; sleep 0.1; done
WEBHOOK_URL="http://127.0.0.1:$(head -n 1 "$WORK/receiver.port")/hook"
CLUSTER_ENV+=(
    "TASKLIGHT_WEBHOOK_ALLOWED_NETS=127.0.0.0/8"
    "TASKLIGHT_WEBHOOK_ALLOW_HTTP=true"
    "TASKLIGHT_WEBHOOK_TIMEOUT_MS=2000"
    "TASKLIGHT_WEBHOOK_LEASE_MS=$WEBHOOK_LEASE_MS"
)
log "webhook receiver on $WEBHOOK_URL"
cluster_migrate "$WORK/migrate.log"
log "migrations applied"

for name in a b c; do
    start_instance "$name" "$WORK/instance-$name-1.log"
done

# ---------------------------------------------------------------------------------------------------
# nginx in front of them (loadtests/nginx.conf.template), everything it writes in WORK/nginx.

NGX="$WORK/nginx"
write_nginx_conf "$NGX" "$NGX" 16 15s
# One request through nginx: it reaches an instance and the request id comes back.
start_nginx "$NGX" drain-smoke
log "nginx (pid $NGINX_PID) on $BASE_URL: a request through it works, X-Request-Id and traceparent pass"

# ---------------------------------------------------------------------------------------------------
# Load, and two drains under it.

SUMMARY_PATH="$WORK/k6-summary.json"
start_k6 "$WORK/k6.log" --console-output "$WORK/k6-console.log" \
    -e "BASE_URL=$BASE_URL" -e "RATE=$RATE" -e "DURATION=$DURATION" -e "SUMMARY_PATH=$SUMMARY_PATH" \
    -e "WEBHOOK_URL=$WEBHOOK_URL" \
    "$HERE/drain.js"
log "k6 (pid $K6_PID): $RATE requests/s for $DURATION, ~70% reads / 30% writes"

sleep_until() {
    local wait_s
    wait_s=$(awk -v start="$K6_START" -v at="$1" -v t="$(now)" 'BEGIN { w = start + at - t; printf "%.3f", (w > 0 ? w : 0) }')
    sleep "$wait_s"
}

declare -A DRAIN_CODE=() DRAIN_SECS=() DRAIN_READY=() DRAIN_AT=()

# drain NAME: SIGTERM, check readiness turns 503 "draining", wait (bounded) for the exit and record
# its code and time, then start the instance again on the same ports.
drain() {
    local name=$1 pid=${INST_PID[$1]} body status ready="no" deadline
    DRAIN_AT[$name]=$(since "$K6_START")
    TERM_SENT=$(now)
    kill -TERM "$pid"
    log "SIGTERM to instance $name (pid $pid) at ${DRAIN_AT[$name]}s into the load"
    deadline=$((SECONDS + 2))
    while ((SECONDS < deadline)) && alive "$pid"; do
        body=$(curl -sS --max-time 1 -w ' %{http_code}' "http://127.0.0.1:${ADMIN_PORT[$name]}/health/ready" 2>/dev/null) || true
        status=${body##* }
        if [[ $status == 503 && $body == *'"draining":true'* ]]; then
            ready="503 draining after $(since "$TERM_SENT")s"
            break
        fi
        sleep 0.05
    done
    DRAIN_READY[$name]=$ready
    await_exit "$name" $((EXIT_LIMIT_S + 5))
    DRAIN_SECS[$name]=$EXIT_SECS
    DRAIN_CODE[$name]=$EXIT_CODE
    log "instance $name exited with code $EXIT_CODE after ${EXIT_SECS}s; readiness: $ready"
    start_instance "$name" "$WORK/instance-$name-2.log"
}

sleep_until "$DRAIN_A_AT"
alive "$K6_PID" || log "k6 ended before the first drain"
drain a
sleep_until "$DRAIN_B_AT"
alive "$K6_PID" || log "k6 ended before the second drain"
drain b

wait_k6 "$K6_LIMIT_S" 5
log "k6 finished (exit $K6_CODE) after $(since "$K6_START")s"

# After the load (so that no client request is cut off): a slow receiver (0.2 s an answer), 40
# new tasks, and a SIGKILL of the instance whose worker holds the subscription's lease (found in
# the database within 3 s); then it starts again. The lease must run out and another instance
# deliver what the dead worker held.
KILLED="" KILLED_AT="" KILL_OWNER=""
TOKEN=$(json_eval "$SUMMARY_PATH" 'd.get("token") or ""' 2>/dev/null || true)
PROJECT=$(json_eval "$SUMMARY_PATH" 'd.get("project_id") or ""' 2>/dev/null || true)
if [[ -n $TOKEN && -n $PROJECT ]]; then
    echo 0.2 >"$RECEIVED.delay"
    for i in $(seq 40); do
        id=$(curl -fsS --max-time 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
            -d "{\"title\": \"after the load $i\"}" "$BASE_URL/api/v1/projects/$PROJECT/tasks" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') && echo "created-task $id" >>"$WORK/after-load.txt"
    done
    for _ in $(seq 60); do
        KILL_OWNER=$(psql_run -c "SELECT lease_owner FROM webhooks WHERE lease_owner IS NOT NULL AND lease_until > now() LIMIT 1" || true)
        [[ -n $KILL_OWNER ]] && break
        sleep 0.05
    done
    id=${KILL_OWNER%%/*}
    KILLED=${id#"$CLUSTER_ID_PREFIX"}
    if [[ -n $KILL_OWNER && -n ${INST_PID[$KILLED]:-} ]]; then
        KILLED_AT=$(now)
        kill -KILL "${INST_PID[$KILLED]}"
        wait "${INST_PID[$KILLED]}" 2>/dev/null || true
        log "SIGKILL to instance $KILLED (pid ${INST_PID[$KILLED]}) while its worker $KILL_OWNER held the webhook's lease"
        rm -f "$RECEIVED.delay"
        start_instance "$KILLED" "$WORK/instance-$KILLED-killed.log"
    else
        KILLED=""
        rm -f "$RECEIVED.delay"
        log "no worker held the webhook's lease after the load: nothing killed"
    fi
fi

# ---------------------------------------------------------------------------------------------------
# Verdict.

PROBLEMS=()
problem() { PROBLEMS+=("$*"); }

cat "$WORK/k6.log"
[[ $K6_CODE -eq 0 ]] || problem "k6 exited $K6_CODE (99: a threshold failed)"

json() { json_eval "$SUMMARY_PATH" "$1"; }
if [[ -s $SUMMARY_PATH ]]; then
    TOTAL=$(json 'int(d["total_requests"])')
    FAILED=$(json 'int(d["failed_requests"])')
    UNEXPECTED=$(json 'int(d["unexpected_responses"])')
    ACKED=$(json 'int(d["acknowledged_writes"])')
    SEEDED=$(json 'int(d["seed_tasks"])')
    DROPPED=$(json 'int(d["dropped_iterations"])')
    PROJECT_ID=$(json 'd["project_id"] or ""')
    P95=$(json '"%.1f" % d["latency_ms"]["p95"]')
    P99=$(json '"%.1f" % d["latency_ms"]["p99"]')
else
    problem "k6 wrote no summary to $SUMMARY_PATH"
    TOTAL=0 FAILED=0 UNEXPECTED=0 ACKED=0 SEEDED=0 DROPPED=0 PROJECT_ID="" P95="?" P99="?"
fi
((FAILED == 0)) || problem "$FAILED requests failed"
((UNEXPECTED == 0)) || problem "$UNEXPECTED responses had an unexpected status"
((TOTAL > 0)) || problem "k6 sent no requests"

# Every acknowledged task is in the database, and nothing else was written to the project.
ROWS=-1 MISSING=0 EXTRA=0
ACKED_IDS="$WORK/acknowledged-ids.txt"
grep -o 'created-task [0-9a-f-]*' "$WORK/k6-console.log" 2>/dev/null | cut -d ' ' -f 2 | sort -u >"$ACKED_IDS" || true
# The 40 tasks written after the load, for the webhook check (not in the k6 counts).
ALL_ACKED_IDS="$WORK/acknowledged-ids-with-after-load.txt"
{ cat "$ACKED_IDS"; cut -d ' ' -f 2 "$WORK/after-load.txt" 2>/dev/null; } | sort -u >"$ALL_ACKED_IDS"
ACKED_ID_COUNT=$(wc -l <"$ACKED_IDS")
if [[ -n $PROJECT_ID ]]; then
    ROWS=$(psql_run -c "SELECT count(*) FROM tasks WHERE project_id = '$PROJECT_ID' AND title NOT LIKE 'after the load %'")
    psql_run -c "SELECT id FROM tasks WHERE project_id = '$PROJECT_ID' AND title NOT LIKE 'after the load %' AND NOT EXISTS (SELECT 1 FROM task_tags WHERE task_id = tasks.id AND tag = 'seed')" |
        sort -u >"$WORK/db-ids.txt"
    MISSING=$(comm -23 "$ACKED_IDS" "$WORK/db-ids.txt" | wc -l)
    EXTRA=$(comm -13 "$ACKED_IDS" "$WORK/db-ids.txt" | wc -l)
    ((ROWS == SEEDED + ACKED)) ||
        problem "the project has $ROWS tasks in the database; expected $SEEDED seeded + $ACKED acknowledged"
    ((MISSING == 0)) || problem "$MISSING acknowledged tasks are missing from the database: $(comm -23 "$ACKED_IDS" "$WORK/db-ids.txt" | head -n 5 | tr '\n' ' ')"
    ((EXTRA == 0)) || problem "$EXTRA tasks are in the database without an acknowledged 201: $(comm -13 "$ACKED_IDS" "$WORK/db-ids.txt" | head -n 5 | tr '\n' ' ')"
else
    problem "no project id in the k6 summary (setup failed?)"
fi
((ACKED_ID_COUNT == ACKED)) || problem "k6 logged $ACKED_ID_COUNT task ids for $ACKED acknowledged writes"

# Every acknowledged task's task.created event reaches the receiver (bounded wait), across the
# drains and the SIGKILL; duplicates (an event delivered again after a takeover) are counted.
WEBHOOK_MISSING=-1
deadline=$((SECONDS + DELIVERY_LIMIT_S))
while ((SECONDS < deadline)); do
    python3 -c 'import json,sys; print("\n".join(sorted({json.loads(l)["task_id"] for l in open(sys.argv[1]) if l.strip()})))' \
        "$RECEIVED" >"$WORK/delivered-ids.txt"
    WEBHOOK_MISSING=$(comm -23 "$ALL_ACKED_IDS" "$WORK/delivered-ids.txt" | wc -l)
    ((WEBHOOK_MISSING == 0)) && break
    sleep 0.5
done
read -r WEBHOOK_REQUESTS WEBHOOK_EVENTS WEBHOOK_DUPLICATES KILL_GAP < <(python3 - "$RECEIVED" "${KILLED_AT:-0}" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ids = [l["webhook_id"] for l in lines]
killed_at = float(sys.argv[2])
after = [l["at"] for l in lines if killed_at and l["at"] > killed_at]
# The longest pause in deliveries after the kill: the lease running out.
gaps = [b - a for a, b in zip([killed_at] + after, after)] if after else [0]
print(len(lines), len(set(ids)), len(ids) - len(set(ids)), "%.1f" % max(gaps))
PY
)
((WEBHOOK_MISSING == 0)) ||
    problem "$WEBHOOK_MISSING acknowledged tasks' events never reached the webhook receiver: $(comm -23 "$ALL_ACKED_IDS" "$WORK/delivered-ids.txt" | head -n 5 | tr '\n' ' ')"
[[ -n $KILLED ]] || problem "no webhook worker held a lease to be killed after the load (the receiver got $WEBHOOK_REQUESTS requests)"
# The lease must have held deliveries back after the kill (a pause of about the lease), then
# another instance delivered.
awk -v g="$KILL_GAP" -v l="$WEBHOOK_LEASE_MS" 'BEGIN { exit !(g * 1000 >= l * 0.5 && g * 1000 <= l + 5000) }' ||
    problem "after the SIGKILL deliveries paused ${KILL_GAP}s; expected about the lease (${WEBHOOK_LEASE_MS} ms)"

for name in a b; do
    code=${DRAIN_CODE[$name]:-none} secs=${DRAIN_SECS[$name]:-0}
    [[ $code == 0 ]] || problem "instance $name exited with code $code after SIGTERM"
    awk -v s="$secs" -v l="$EXIT_LIMIT_S" 'BEGIN { exit !(s <= l) }' ||
        problem "instance $name took ${secs}s to exit (limit ${EXIT_LIMIT_S}s)"
    [[ ${DRAIN_READY[$name]:-no} != no ]] || problem "instance $name's readiness did not answer 503 draining after SIGTERM"
    for phase in draining closing closed; do
        grep -q "\"phase\":\"$phase\"" "$WORK/instance-$name-1.log" ||
            problem "instance $name did not log the shutdown phase $phase"
    done
done

# What nginx saw: attempts moved to another instance, and errors it logged.
nginx_counts "$NGX"

phases() { grep -o '"phase":"[a-z]*"' "$1" | cut -d '"' -f 4 | uniq | paste -sd ' ' -; }
# Requests still in flight when the listener closed (the closing phase's in_flight), if logged.
in_flight_at_close() { grep '"phase":"closing"' "$1" | grep -o '"in_flight":[0-9]*' | cut -d : -f 2 | head -n 1; }
served() { grep -c '"tasklight::access"' "$1" || true; }

echo
echo "=== drain under load: report"
printf '  requests            %s total (k6, through nginx), %s failed, %s unexpected statuses, %s dropped iterations\n' \
    "$TOTAL" "$FAILED" "$UNEXPECTED" "$DROPPED"
printf '  latency             p95 %s ms, p99 %s ms\n' "$P95" "$P99"
printf '  writes              %s acknowledged (201), %s ids logged; database: %s rows for the project = %s seeded + %s; %s missing, %s unacknowledged\n' \
    "$ACKED" "$ACKED_ID_COUNT" "$ROWS" "$SEEDED" "$((ROWS - SEEDED))" "$MISSING" "$EXTRA"
for name in a b; do
    printf '  drain %s             SIGTERM at %ss, exit code %s after %ss (limit %ss); readiness %s; phases: %s; in flight at close: %s\n' \
        "$name" "${DRAIN_AT[$name]:-?}" "${DRAIN_CODE[$name]:-?}" "${DRAIN_SECS[$name]:-?}" "$EXIT_LIMIT_S" \
        "${DRAIN_READY[$name]:-?}" "$(phases "$WORK/instance-$name-1.log")" "$(in_flight_at_close "$WORK/instance-$name-1.log")"
done
printf '  requests served     a %s+%s, b %s+%s, c %s (before+after restart)\n' \
    "$(served "$WORK/instance-a-1.log")" "$(served "$WORK/instance-a-2.log")" \
    "$(served "$WORK/instance-b-1.log")" "$(served "$WORK/instance-b-2.log")" "$(served "$WORK/instance-c-1.log")"
printf '  nginx               %s requests passed to a second instance, %s answered 5xx, %s [error] lines in error.log\n' \
    "$NGX_RETRIED" "$NGX_5XX" "$NGX_ERRORS"
printf '  webhooks            %s requests for %s events (%s duplicates); %s acknowledged tasks (%s under load + 40 after) without their event\n' \
    "$WEBHOOK_REQUESTS" "$WEBHOOK_EVENTS" "$WEBHOOK_DUPLICATES" "$WEBHOOK_MISSING" "$ACKED"
printf '  SIGKILL             instance %s while %s held the lease: deliveries paused %ss (lease %s ms), then another instance went on\n' \
    "${KILLED:-nobody}" "${KILL_OWNER:-nobody}" "$KILL_GAP" "$WEBHOOK_LEASE_MS"

if ((${#PROBLEMS[@]} > 0)); then
    echo
    echo "=== FAILED"
    printf '  - %s\n' "${PROBLEMS[@]}"
    if grep -q '^.*FAILED' "$WORK/k6-console.log" 2>/dev/null; then
        echo "--- failed requests (k6), first 20:"
        grep 'FAILED' "$WORK/k6-console.log" | head -n 20
        echo "--- nginx access log lines of those requests:"
        grep 'FAILED' "$WORK/k6-console.log" | grep -o 'rid=drain-[0-9-]*' | head -n 20 | while read -r rid; do
            grep -F "$rid " "$NGX/access.log" || true
        done
    fi
    if ((NGX_ERRORS > 0)); then
        echo "--- nginx error log, first 20 [error] lines:"
        grep '\[error\]' "$NGX/error.log" | head -n 20
    fi
    exit 1
fi
echo "=== PASSED: no request failed, every acknowledged write is in the database and its event reached the webhook receiver, both drains exited 0 in time"
