# shellcheck shell=bash
# Shell helpers shared by loadtests/run-local.sh and loadtests/drain/run.sh (sourced, not run).
# They expect PG_HOST, PG_PORT, PG_USER, REDIS_HOST and REDIS_PORT to be set by the caller.

psql_admin() {
    psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

# alive PID: the process exists and is not a zombie.
alive() {
    local stat
    [[ -n $1 ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL once SECONDS have passed.
stop_pid() {
    local pid=$1 limit=$2 waited=0
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && ((waited < limit * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# free_ports N: prints N distinct free TCP ports on 127.0.0.1, space-separated.
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# drop_redis_prefix PREFIX: deletes the Redis keys under PREFIX (REDIS_HOST, REDIS_PORT), if
# redis-cli is installed.
drop_redis_prefix() {
    command -v redis-cli >/dev/null || return 0
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "$1*" 2>/dev/null |
        xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null 2>&1
}

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# wait_live NAME PID ADMIN_PORT LOGFILE: waits (30 s at most) until the instance answers
# /health/live on its admin port; calls `die` (the caller's), with the log's tail, if the process
# exits or the time runs out.
wait_live() {
    local name=$1 pid=$2 admin_port=$3 logfile=$4 deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$admin_port/health/live" 2>/dev/null; do
        if ! alive "$pid"; then
            tail -n 20 "$logfile" >&2
            die "instance $name exited during start-up (log above)"
        fi
        ((SECONDS < deadline)) || {
            tail -n 20 "$logfile" >&2
            die "instance $name was not live within 30 s (log above)"
        }
        sleep 0.1
    done
}

# start_nginx DIR BASE_URL REQUEST_ID: checks and starts "$NGINX" with DIR/nginx.conf (logs in DIR),
# sets NGINX_PID, waits (10 s at most) until BASE_URL answers, then sends one request through it
# and checks that X-Request-Id and traceparent pass. Calls `die` (the caller's) on failure.
start_nginx() {
    local dir=$1 base=$2 request_id=$3 deadline headers
    "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || die "nginx rejected $dir/nginx.conf"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    deadline=$((SECONDS + 10))
    until curl -fsS -o /dev/null --max-time 1 "$base/health/live" 2>/dev/null; do
        alive "$NGINX_PID" || {
            cat "$dir/stdout.log" "$dir/error.log" >&2
            die "nginx exited (log above)"
        }
        ((SECONDS < deadline)) || die "nginx did not answer on $base within 10 s"
        sleep 0.1
    done
    headers=$(curl -fsS --max-time 5 -D - -o /dev/null -H "X-Request-Id: $request_id" \
        -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "$base/api/v1/openapi.json") ||
        die "GET /api/v1/openapi.json through nginx failed"
    grep -qi "^x-request-id: $request_id" <<<"$headers" || die "nginx did not pass X-Request-Id through"
    grep -qi '^traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-' <<<"$headers" ||
        die "nginx did not pass traceparent through"
}
