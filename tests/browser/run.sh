#!/usr/bin/env bash
# Swagger UI browser test: starts the release binary on SQLite in a scratch directory, registers
# and logs in a user with curl, then drives /docs in headless chromium (swagger-ui.mjs).
# Usage: tests/browser/run.sh   (BIN, CHROMIUM and BROWSER_TIMEOUT_MS may be overridden)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${BIN:-/var/tmp/tasklight-target/release/tasklight}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SCREENSHOT=${SCREENSHOT:-$REPO/target/browser/swagger-ui.png}
export BROWSER_TIMEOUT_MS=${BROWSER_TIMEOUT_MS:-15000}

die() { echo "run.sh: $*" >&2; exit 1; }

[[ -x $BIN ]] || die "no tasklight binary at $BIN (build with 'cargo build --release' or set BIN)"
[[ -x $CHROMIUM ]] || die "chromium not found at $CHROMIUM (apt-get install -y --no-install-recommends chromium, or set CHROMIUM)"
command -v node >/dev/null || die "node is not installed"
command -v curl >/dev/null || die "curl is not installed"

if [[ ! -d $HERE/node_modules/playwright-core ]]; then
    echo "run.sh: installing playwright-core (npm ci in $HERE)" >&2
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $HERE"
fi

SCRATCH=$(mktemp -d -t tasklight-browser.XXXXXX)
SERVER_PID=
cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -s $SCRATCH/server.log ]]; then
        echo "run.sh: last lines of the server log:" >&2
        tail -n 20 "$SCRATCH/server.log" >&2 || true
    fi
    rm -rf "$SCRATCH"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# alive PID: the process exists and is not a zombie (an exited child stays a zombie until waited).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Two free ports on 127.0.0.1, chosen by the kernel.
free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
PORT=$(free_port)
ADMIN_PORT=$(free_port)
while [[ $ADMIN_PORT == "$PORT" ]]; do ADMIN_PORT=$(free_port); done
BASE=http://127.0.0.1:$PORT

START=$EPOCHREALTIME
(
    cd "$SCRATCH"
    exec env "TASKLIGHT_LISTEN=127.0.0.1:$PORT" "TASKLIGHT_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT" \
        TASKLIGHT_DRAIN_DELAY_MS=0 "$BIN" serve
) >"$SCRATCH/server.log" 2>&1 &
SERVER_PID=$!

# Wait (at most 15 s) for the liveness probe.
for i in $(seq 150); do
    if curl -fsS -o /dev/null --max-time 1 "$BASE/health/live" 2>/dev/null; then break; fi
    alive "$SERVER_PID" || die "tasklight exited before $BASE/health/live answered"
    ((i == 150)) && die "tasklight did not answer $BASE/health/live within 15 s"
    sleep 0.1
done
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
