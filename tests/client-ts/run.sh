#!/usr/bin/env bash
# Generates TypeScript types from a live Tasklight's /api/v1/openapi.json, type-checks a small
# openapi-fetch client against them with `tsc --strict`, and runs it against that instance.
#
#   tests/client-ts/run.sh
#
# BIN      the server binary (default /var/tmp/tasklight-target/release/tasklight; no cargo build here)
# Extra arguments are none; everything else is fixed: SQLite in a scratch directory, two free
# loopback ports, all traffic to 127.0.0.1. The server is stopped on exit, whatever happens.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:-/var/tmp/tasklight-target/release/tasklight}
LIVE_TIMEOUT_S=${LIVE_TIMEOUT_S:-30}

say() { echo "client-ts: $*"; }
failure=
fail() {
    failure=$*
    echo "client-ts: FAILED: $*" >&2
    exit 1
}
now_ms() { date +%s%3N; }

command -v node >/dev/null || fail "node is not installed"
command -v npm >/dev/null || fail "npm is not installed"
command -v curl >/dev/null || fail "curl is not installed"
[[ -x $BIN ]] || fail "no server binary at $BIN (build it with cargo build --release, or set BIN)"

t_start=$(now_ms)
cd "$here"

# 1. Dependencies, exactly as locked.
t0=$(now_ms)
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
fi
t_install=$(($(now_ms) - t0))

# 2. A server of our own: SQLite in a scratch directory, on two free loopback ports.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tasklight-client-ts.XXXXXX")
server_pid=
cleanup() {
    local rc=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -f $scratch/server.log ]]; then
        # The server's warnings and errors, if any, else its last lines (access logs are noise here).
        if grep -qE '"level":"(WARN|ERROR)"' "$scratch/server.log"; then
            echo "client-ts: the server's warnings and errors (last 10):" >&2
            grep -E '"level":"(WARN|ERROR)"' "$scratch/server.log" | tail -n 10 >&2 || true
        else
            echo "client-ts: the server logged no warning or error; its last 3 lines:" >&2
            tail -n 3 "$scratch/server.log" >&2 || true
        fi
    fi
    rm -rf "$scratch"
    if [[ $rc -ne 0 ]]; then
        echo "client-ts: FAILED (exit $rc)${failure:+: $failure}" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    node -e '
        const s = require("net").createServer();
        s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });
    '
}
port=$(free_port)
admin_port=$(free_port)
while [[ $admin_port == "$port" ]]; do admin_port=$(free_port); done
BASE_URL="http://127.0.0.1:$port"

say "starting $BIN on $BASE_URL (admin 127.0.0.1:$admin_port), SQLite in $scratch"
(
    cd "$scratch"
    exec env \
        TASKLIGHT_LISTEN="127.0.0.1:$port" \
        TASKLIGHT_ADMIN_LISTEN="127.0.0.1:$admin_port" \
        TASKLIGHT_DRAIN_DELAY_MS=0 \
        TASKLIGHT_SHUTDOWN_TIMEOUT_MS=2000 \
        TASKLIGHT_RATE_LIMIT_AUTH_IP=1000/1s,burst=1000 \
        TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=1000/1s,burst=1000 \
        TASKLIGHT_RATE_LIMIT_IP=1000/1s,burst=1000 \
        TASKLIGHT_RATE_LIMIT_USER=1000/1s,burst=1000 \
        DATABASE_URL="sqlite://data/tasklight.db" \
        "$BIN" serve
) >"$scratch/server.log" 2>&1 &
server_pid=$!

t0=$(now_ms)
deadline=$((SECONDS + LIVE_TIMEOUT_S))
until curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$admin_port/health/live"; do
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited before it was live"
    ((SECONDS < deadline)) || fail "the server was not live within ${LIVE_TIMEOUT_S}s"
    sleep 0.2
done
t_live=$(($(now_ms) - t0))
say "server live after ${t_live} ms"

# 3. Types from the running instance's document. src/schema.d.ts is generated, never edited.
t0=$(now_ms)
rm -f src/schema.d.ts
npx --no-install openapi-typescript "$BASE_URL/api/v1/openapi.json" -o src/schema.d.ts
[[ -s src/schema.d.ts ]] || fail "openapi-typescript wrote no src/schema.d.ts"
t_gen=$(($(now_ms) - t0))
schema_lines=$(wc -l <src/schema.d.ts)

# 4. Strict type check of the generated types and the client together (skipLibCheck is off, so
# the generated .d.ts is checked too), then compile to JavaScript.
t0=$(now_ms)
npx --no-install tsc --strict --noEmit -p tsconfig.json ||
    fail "tsc --strict rejected the generated types or the client (see above)"
rm -rf dist
npx --no-install tsc -p tsconfig.json || fail "tsc could not compile the client"
t_tsc=$(($(now_ms) - t0))
say "tsc --strict: no errors"

# 5. The client against the live instance.
t0=$(now_ms)
BASE_URL="$BASE_URL" node dist/client.js || fail "the client's checks failed (see above)"
t_run=$(($(now_ms) - t0))

say "summary:"
say "  install        ${t_install} ms"
say "  server live    ${t_live} ms"
say "  generate types ${t_gen} ms (src/schema.d.ts, ${schema_lines} lines, from $BASE_URL/api/v1/openapi.json)"
say "  tsc --strict   ${t_tsc} ms (check and compile)"
say "  client run     ${t_run} ms"
say "  total          $(($(now_ms) - t_start)) ms"
say "OK: the generated types compiled with no fixes and every client check passed"
