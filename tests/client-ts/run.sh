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
ME=client-ts
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
. "$here/../../.ci/lib.sh"
LIVE_TIMEOUT_S=${LIVE_TIMEOUT_S:-30}

say() { echo "client-ts: $*"; }
failure=
die() {
    failure=$*
    echo "client-ts: FAILED: $*" >&2
    exit 1
}
now_ms() { date +%s%3N; }

require node
require npm
require curl
require_bin

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
scratch=""
scratch_dir scratch client-ts
# shellcheck disable=SC2317  # run on exit: before the clean-up, and after it
server_log_on_failure() {
    (($1 != 0)) && [[ -f $scratch/server.log ]] || return 0
    # The server's warnings and errors, if any, else its last lines (access logs are noise here).
    if grep -qE '"level":"(WARN|ERROR)"' "$scratch/server.log"; then
        echo "client-ts: the server's warnings and errors (last 10):" >&2
        grep -E '"level":"(WARN|ERROR)"' "$scratch/server.log" | tail -n 10 >&2 || true
    else
        echo "client-ts: the server logged no warning or error; its last 3 lines:" >&2
        tail -n 3 "$scratch/server.log" >&2 || true
    fi
}
# shellcheck disable=SC2317
failed_line() { (($1 == 0)) || echo "client-ts: FAILED (exit $1)${failure:+: $failure}" >&2; }
on_exit server_log_on_failure failed_line

read -r port admin_port < <(free_ports 2)
BASE_URL="http://127.0.0.1:$port"

say "starting $BIN on $BASE_URL (admin 127.0.0.1:$admin_port), SQLite in $scratch"
t0=$(now_ms)
start_server "the server" "$scratch" "$scratch/server.log" "$port" "$admin_port" \
    TASKLIGHT_DRAIN_DELAY_MS=0 \
    TASKLIGHT_SHUTDOWN_TIMEOUT_MS=2000 \
    TASKLIGHT_RATE_LIMIT_AUTH_IP=1000/1s,burst=1000 \
    TASKLIGHT_RATE_LIMIT_AUTH_ACCOUNT=1000/1s,burst=1000 \
    TASKLIGHT_RATE_LIMIT_IP=1000/1s,burst=1000 \
    TASKLIGHT_RATE_LIMIT_USER=1000/1s,burst=1000 \
    DATABASE_URL="sqlite://data/tasklight.db"
t_live=$(($(now_ms) - t0))
say "server live after ${t_live} ms"

# 3. Types from the running instance's document. src/schema.d.ts is generated, never edited.
t0=$(now_ms)
rm -f src/schema.d.ts
# --default-non-nullable false: a field with a `default` (a new task's status and priority,
# `limit`, `sort`, `order`) stays optional in a request; openapi-typescript 7 would make it required.
npx --no-install openapi-typescript "$BASE_URL/api/v1/openapi.json" -o src/schema.d.ts \
    --default-non-nullable false
[[ -s src/schema.d.ts ]] || die "openapi-typescript wrote no src/schema.d.ts"
t_gen=$(($(now_ms) - t0))
schema_lines=$(wc -l <src/schema.d.ts)

# 3b. The second generator: @hey-api/openapi-ts makes an SDK from the same document, in
# src/hey-api/ (generated, never edited), and src/hey-api-usage.ts uses it; both are checked
# with `tsc --strict` (tsconfig.hey-api.json: the main config plus the DOM types its fetch
# client names).
t0=$(now_ms)
rm -rf src/hey-api
npx --no-install openapi-ts -i "$BASE_URL/api/v1/openapi.json" -o src/hey-api \
    -c @hey-api/client-fetch --no-log-file --silent
[[ -s src/hey-api/sdk.gen.ts ]] || die "@hey-api/openapi-ts wrote no src/hey-api/sdk.gen.ts"
npx --no-install tsc --strict --noEmit -p tsconfig.hey-api.json ||
    die "tsc --strict rejected the @hey-api/openapi-ts client or its use (see above)"
t_hey=$(($(now_ms) - t0))
say "@hey-api/openapi-ts client: tsc --strict, no errors"

# 4. Strict type check of the generated types and the client together (skipLibCheck is off, so
# the generated .d.ts is checked too), then compile to JavaScript.
t0=$(now_ms)
npx --no-install tsc --strict --noEmit -p tsconfig.json ||
    die "tsc --strict rejected the generated types or the client (see above)"
rm -rf dist
npx --no-install tsc -p tsconfig.json || die "tsc could not compile the client"
t_tsc=$(($(now_ms) - t0))
say "tsc --strict: no errors"

# 5. The client against the live instance; its invitation checks run `tasklight verify-email`
# through TASKLIGHT_CLI, the binary on the server's directory and database.
t0=$(now_ms)
cli="$scratch/tasklight-cli"
printf '#!/usr/bin/env bash\ncd %q && exec env DATABASE_URL=sqlite://data/tasklight.db %q "$@"\n' \
    "$scratch" "$BIN" >"$cli"
chmod +x "$cli"
BASE_URL="$BASE_URL" TASKLIGHT_CLI="$cli" node dist/client.js || die "the client's checks failed (see above)"
t_run=$(($(now_ms) - t0))

say "summary:"
say "  install        ${t_install} ms"
say "  server live    ${t_live} ms"
say "  generate types ${t_gen} ms (src/schema.d.ts, ${schema_lines} lines, from $BASE_URL/api/v1/openapi.json)"
say "  hey-api client ${t_hey} ms (generate src/hey-api/, tsc --strict)"
say "  tsc --strict   ${t_tsc} ms (check and compile)"
say "  client run     ${t_run} ms"
say "  total          $(($(now_ms) - t_start)) ms"
say "OK: the generated types compiled with no fixes and every client check passed"
