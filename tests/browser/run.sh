#!/usr/bin/env bash
# Swagger UI browser test: starts the release binary on SQLite in a scratch directory, registers
# and logs in a user with curl, then drives /docs in headless chromium (swagger-ui.mjs).
# Usage: tests/browser/run.sh   (BIN, CHROMIUM and BROWSER_TIMEOUT_MS may be overridden)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ME=run.sh
# shellcheck source=SCRIPTDIR/../../.ci/lib.sh
. "$REPO/.ci/lib.sh"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SCREENSHOT=${SCREENSHOT:-$REPO/target/browser/swagger-ui.png}
export BROWSER_TIMEOUT_MS=${BROWSER_TIMEOUT_MS:-15000}

require_bin
[[ -x $CHROMIUM ]] || die "chromium not found at $CHROMIUM (apt-get install -y --no-install-recommends chromium, or set CHROMIUM)"
require node
require curl

if [[ ! -d $HERE/node_modules/playwright-core ]]; then
    echo "run.sh: installing playwright-core (npm ci in $HERE)" >&2
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $HERE"
fi

SCRATCH=""
scratch_dir SCRATCH browser
# shellcheck disable=SC2317  # run on exit, before the clean-up
server_log_on_failure() {
    if (($1 != 0)) && [[ -s $SCRATCH/server.log ]]; then
        echo "run.sh: last lines of the server log:" >&2
        tail -n 20 "$SCRATCH/server.log" >&2 || true
    fi
}
on_exit server_log_on_failure

read -r PORT ADMIN_PORT < <(free_ports 2)
BASE=http://127.0.0.1:$PORT

START=$EPOCHREALTIME
spawn_server "$SCRATCH" "$SCRATCH/server.log" "TASKLIGHT_LISTEN=127.0.0.1:$PORT" \
    "TASKLIGHT_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT" TASKLIGHT_DRAIN_DELAY_MS=0
# Wait (at most 15 s) for the liveness probe.
wait_http "$BASE/health/live" "$SERVER_PID" 15 tasklight
echo "run.sh: tasklight is up on $BASE (pid $SERVER_PID, scratch $SCRATCH)"

EMAIL="swagger-$RANDOM$RANDOM@example.test"
PASSWORD="browser-test-password-$RANDOM"
# post PATH JSON EXPECTED_STATUS: prints the body; fails naming the status otherwise.
post() {
    local out status
    out=$(curl -sS --max-time 10 -o "$SCRATCH/body" -w '%{http_code}' -H 'content-type: application/json' \
        -d "$2" "$BASE$1") || die "POST $1 failed (curl)"
    status=$out
    [[ $status == "$3" ]] || die "POST $1 returned $status, expected $3: $(cat "$SCRATCH/body")"
    cat "$SCRATCH/body"
}
post /api/v1/auth/register \
    "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"display_name\":\"Swagger Browser\"}" 201 >/dev/null
LOGIN=$(post /api/v1/auth/login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" 200)
TOKEN=$(node -e 'const b=JSON.parse(process.argv[1]);if(!b.access_token)process.exit(1);console.log(b.access_token)' "$LOGIN") ||
    die "login response has no access_token: $LOGIN"
echo "run.sh: registered and logged in $EMAIL"

mkdir -p "$(dirname "$SCREENSHOT")"
BASE_URL=$BASE ACCESS_TOKEN=${ACCESS_TOKEN_OVERRIDE:-$TOKEN} USER_EMAIL=$EMAIL \
    CHROMIUM=$CHROMIUM SCREENSHOT=$SCREENSHOT \
    node "$HERE/swagger-ui.mjs"

echo "run.sh: passed in $(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
echo "run.sh: screenshot: $SCREENSHOT"
