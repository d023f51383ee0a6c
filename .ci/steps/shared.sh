# shellcheck shell=bash
# What the CI steps share, sourced by .ci/run before the steps: the build directory, the release
# binary and the venv, and the functions that make sure of them, so that a step run alone
# (.ci/run 8) has what it needs. Uses .ci/lib.sh (sourced by .ci/run first).


export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tasklight-target}
BIN=${BIN:-$CARGO_TARGET_DIR/release/tasklight}
VENV=$CARGO_TARGET_DIR/ci-venv
# shellcheck disable=SC2034  # used by the steps
SQLITE_DIR="" SQLITE_ORIGIN="" SQLITE_PID=""
BASE_TOOLS_READY="" RELEASE_READY=""

# ensure_base_tools: curl, python3, the PostgreSQL and Redis clients, redis-server (the
# Redis-outage test starts and stops a Redis of its own) and openssl (the STARTTLS test's SMTP
# server makes a self-signed certificate with it); installed when missing.
ensure_base_tools() {
    [[ -z $BASE_TOOLS_READY ]] || return 0
    need curl curl
    need python3 python3
    need pg_isready postgresql-client
    need psql postgresql-client
    need redis-cli redis-tools
    need redis-server redis-server
    need openssl openssl
    BASE_TOOLS_READY=1
}

# ensure_release_binary: cargo build --release (once a run), unless the caller set BIN.
ensure_release_binary() {
    [[ -z $RELEASE_READY ]] || return 0
    if [[ -n $BIN_GIVEN ]]; then
        echo "release binary: $BIN (set by the caller; not built)"
    else
        cargo build --release
    fi
    [[ -x $BIN ]] || die "no release binary at $BIN"
    "$BIN" --help >/dev/null
    RELEASE_READY=1
}

# ensure_venv PACKAGE...: CI's Python venv ($VENV) with these tools in it.
ensure_venv() {
    mkdir -p "$CARGO_TARGET_DIR"
    venv_install "$VENV" "$@"
}

# ci_start_server DIR ORIGIN_VAR PID_VAR [VAR=value...]: starts the release binary in DIR (its ./data
# lands there) with the given environment, logs to DIR/server.log, waits for /health/live (at most
# 30 s) and stores the origin and PID in the named variables.
ci_start_server() {
    local dir=$1 origin_var=$2 pid_var=$3 port admin_port origin started=$SECONDS
    shift 3
    read -r port admin_port < <(free_ports 2)
    origin="http://127.0.0.1:$port"
    spawn_server "$dir" "$dir/server.log" "TASKLIGHT_LISTEN=127.0.0.1:$port" \
        "TASKLIGHT_ADMIN_LISTEN=127.0.0.1:$admin_port" LOG_FORMAT=json RUST_LOG=info "$@"
    echo "started tasklight (pid $SERVER_PID) on $origin, log $dir/server.log"
    wait_http "$origin/health/live" "$SERVER_PID" 30 "the server" "$dir/server.log"
    echo "live after $((SECONDS - started))s; readiness: $(curl -fsS "$origin/health/ready")"
    printf -v "$origin_var" '%s' "$origin"
    printf -v "$pid_var" '%s' "$SERVER_PID"
}

# ensure_sqlite_server: the release binary on SQLite in a scratch directory (SQLITE_DIR,
# SQLITE_ORIGIN, SQLITE_PID), started once for steps 5 and 6.
ensure_sqlite_server() {
    [[ -z $SQLITE_PID ]] || return 0
    ensure_base_tools
    ensure_release_binary
    scratch_dir SQLITE_DIR ci
    # Rate limits must not hide findings: schemathesis gets a generous policy through configuration
    # (the same variables an operator would set), not through a code path only tests take.
    local quota=10000000/1s,burst=10000000
    ci_start_server "$SQLITE_DIR" SQLITE_ORIGIN SQLITE_PID \
        "TASKLIGHT_RATE_LIMIT_USER=$quota" "TASKLIGHT_RATE_LIMIT_IP=$quota" \
        "TASKLIGHT_RATE_LIMIT_AUTH_IP=$quota" "TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=$quota"
}

# run_tour ORIGIN LOG DIR [VAR=value...]: the README curl tour, word for word, against the server
# started in DIR with these variables; the tour's `tasklight` commands (TASKLIGHT) run the same
# binary in DIR with the same variables. Prints the server log if it fails.
run_tour() {
    local origin=$1 log=$2 dir=$3 cli
    shift 3
    cli="$dir/tasklight-cli"
    {
        echo '#!/usr/bin/env bash'
        printf 'cd %q && exec env' "$dir"
        printf ' %q' "$@" "$BIN"
        printf ' "$@"\n'
    } >"$cli"
    chmod +x "$cli"
    if ! TASKLIGHT=$cli .ci/curl-tour.sh "$origin"; then
        echo "--- last lines of the server log:" >&2
        tail -n 40 "$log" >&2
        die "the README curl tour failed against $origin"
    fi
}
