# Shell helpers shared by loadtests/run-local.sh and loadtests/drain/run.sh (sourced, not run).
# They expect PG_HOST, PG_PORT and PG_USER to be set by the caller.

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

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
