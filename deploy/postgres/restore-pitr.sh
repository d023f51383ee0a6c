#!/usr/bin/env bash
# Point-in-time recovery: a new PostgreSQL cluster from a base backup (backup.sh) and the WAL
# archive, replayed up to a target time (or to the end of the archive), then promoted.
#
# Usage: deploy/postgres/restore-pitr.sh --backup DIR --archive DIR --target TIME|latest
#                                        --pgdata NEWDIR --port PORT [OPTION...]
#
#   --backup DIR        a directory made by backup.sh (plain or --tar)
#   --archive DIR       the WAL archive the source cluster's archive_command copies into; it must
#                       be readable by the user the server runs as
#   --target TIME       the moment to restore to: an ISO timestamp, best with its offset
#                       ('2025-06-12 14:03:00+02', '2025-06-12T12:03:00Z'), or anything GNU
#                       `date -d` reads ('yesterday 14:03', local time). It is normalised to an
#                       explicit offset and printed. Every transaction that committed at or before
#                       it is kept, every later one is not (recovery_target_inclusive=on).
#   --target latest     replay everything the archive holds
#   --pgdata NEWDIR     the new data directory: must not exist, or be empty
#   --port PORT         the restored server's port (it must be free)
#   --listen ADDR       listen_addresses of the restored server (default 127.0.0.1: nothing outside
#                       this host reaches it before you have looked at it)
#   --socket-dir DIR    unix_socket_directories (default: none, TCP only)
#   --run-as USER       when run as root, the OS user that owns NEWDIR and runs the server
#                       (default postgres); otherwise the server runs as you
#   --log FILE          the server's log (default NEWDIR.log, beside the data directory)
#   --timeout SECONDS   how long recovery may take before this script gives up waiting (default
#                       3600; the server is left running then)
#
# Environment: PG_BIN, the directory of the PostgreSQL server programs (default
# /usr/lib/postgresql/15/bin when it exists); their major version must be the backup's.
#
# What it does:
#   1. Copies (plain) or unpacks (--tar) the base backup into NEWDIR and checks it there with
#      pg_verifybackup against the backup's manifest, before anything else touches it.
#   2. Appends to NEWDIR/postgresql.auto.conf (read last, so it wins): port, listen_addresses,
#      unix_socket_directories, restore_command = cp from the archive, recovery_target_time (not
#      with `latest`), recovery_target_action = promote, archive_mode = off (a restored copy must
#      not write its new timeline into the source's archive), primary_conninfo = '' and
#      synchronous_standby_names = '' (neither follows a primary nor waits for standbys), and
#      creates recovery.signal. A backup without postgresql.conf (Debian keeps it in
#      /etc/postgresql) gets a minimal one and a pg_hba.conf that allows local connections only.
#   3. Starts the server (pg_ctl), waits until it has replayed up to the target and promoted
#      itself (pg_controldata says "in production" and pg_is_in_recovery() is false), and prints
#      where recovery stopped, the seconds each phase took, and how to connect and stop it.
#
# The restored server keeps running on PORT; stop it with
#   pg_ctl -D NEWDIR stop -m fast        (as the --run-as user)
# If recovery fails (for example the archive ends before the target: "recovery ended before
# configured recovery target was reached"), the server exits and the end of its log is shown.
# The runbook (which backup to pick, what to check, how to point Tasklight at the result) is in
# deploy/postgres/README.md.
set -euo pipefail

ME=${0##*/}
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh" # die, usage, since, pg_bin...

BACKUP="" ARCHIVE="" TARGET="" PGDATA_NEW="" PORT="" LISTEN=127.0.0.1 SOCKET_DIR="" RUN_AS=postgres
LOG="" TIMEOUT=3600
while (($# > 0)); do
    case $1 in
    --backup) BACKUP=${2:-} ;;
    --archive) ARCHIVE=${2:-} ;;
    --target) TARGET=${2:-} ;;
    --pgdata) PGDATA_NEW=${2:-} ;;
    --port) PORT=${2:-} ;;
    --listen) LISTEN=${2:-} ;;
    --socket-dir) SOCKET_DIR=${2:-} ;;
    --run-as) RUN_AS=${2:-} ;;
    --log) LOG=${2:-} ;;
    --timeout) TIMEOUT=${2:-} ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
    (($# >= 2)) || die "$1 needs a value"
    shift 2
done
[[ -n $BACKUP && -n $ARCHIVE && -n $TARGET && -n $PGDATA_NEW && -n $PORT ]] ||
    die "--backup, --archive, --target, --pgdata and --port are required (see --help)"
[[ $PORT =~ ^[0-9]+$ ]] || die "--port: a number, not $PORT"
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout: seconds, not $TIMEOUT"

pg_bin --any pg_ctl postgres pg_controldata pg_verifybackup psql

# As root, everything the server touches belongs to RUN_AS and the server runs as RUN_AS
# (PostgreSQL refuses to run as root).
pg_os_user "$RUN_AS" "no OS user $RUN_AS (--run-as)"
RUN_AS=$PG_USER_OS

# --- The inputs. ------------------------------------------------------------------------------------
[[ -d $BACKUP ]] || die "no backup directory $BACKUP"
BACKUP=$(cd "$BACKUP" && pwd)
[[ -f $BACKUP/backup_manifest ]] || die "$BACKUP has no backup_manifest: not a backup made by backup.sh / pg_basebackup"
if [[ -f $BACKUP/base.tar.gz ]]; then
    FORMAT=tar
    [[ -f $BACKUP/pg_wal.tar.gz ]] || die "$BACKUP has base.tar.gz but no pg_wal.tar.gz"
    (($(find "$BACKUP" -maxdepth 1 -name '*.tar*' | wc -l) == 2)) ||
        die "$BACKUP holds more than base.tar.gz and pg_wal.tar.gz (tablespaces?): not supported by this script"
elif [[ -f $BACKUP/PG_VERSION ]]; then
    FORMAT=plain
    [[ ! -s $BACKUP/tablespace_map ]] || die "$BACKUP has tablespaces: not supported by this script"
else
    die "$BACKUP is neither a plain backup (PG_VERSION) nor a tar one (base.tar.gz)"
fi
[[ -d $ARCHIVE ]] || die "no WAL archive directory $ARCHIVE"
ARCHIVE=$(cd "$ARCHIVE" && pwd)
[[ $ARCHIVE != *[\'\"\\]* ]] || die "the archive path may not contain quotes or backslashes (it goes into restore_command)"
as_pg test -r "$ARCHIVE" -a -x "$ARCHIVE" || die "$RUN_AS cannot read $ARCHIVE"
SEGMENTS=$(find "$ARCHIVE" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' | wc -l)
((SEGMENTS > 0)) || echo "$ME: warning: $ARCHIVE holds no WAL segment: only the backup itself can be restored" >&2

info() { sed -n "s/^$1=//p" "$BACKUP/tasklight-backup.txt" 2>/dev/null | head -n 1; }
BACKUP_STARTED=$(info started_at)
BACKUP_FINISHED=$(info finished_at)

if [[ $TARGET == latest ]]; then
    TARGET_SQL=""
    echo "$ME: target: latest (everything in $ARCHIVE)"
else
    TARGET_SQL=$(date -d "$TARGET" '+%Y-%m-%d %H:%M:%S.%6N%:z' 2>/dev/null) ||
        die "--target: cannot read '$TARGET' as a time (ISO, e.g. 2025-06-12T14:03:00+02:00, or latest)"
    echo "$ME: target: $TARGET_SQL (from '$TARGET')"
    TARGET_S=$(date -d "$TARGET_SQL" +%s.%6N)
    if [[ -n $BACKUP_STARTED ]]; then
        awk -v t="$TARGET_S" -v s="$(date -d "$BACKUP_STARTED" +%s.%6N)" 'BEGIN { exit !(t < s) }' &&
            die "the target is before this backup started ($BACKUP_STARTED): restore from an older backup"
        awk -v t="$TARGET_S" -v f="$(date -d "$BACKUP_FINISHED" +%s.%6N)" 'BEGIN { exit !(t < f) }' &&
            echo "$ME: warning: the target is before this backup finished ($BACKUP_FINISHED); PostgreSQL refuses a stop point before the backup's end (\"before consistent recovery point\"): prefer an older backup" >&2
    fi
fi

# The address this script connects to; the port must be free there (a server already there would
# make pg_ctl fail only after the copy).
CONNECT_ADDR=${LISTEN%%,*}
[[ $CONNECT_ADDR != '*' && $CONNECT_ADDR != 0.0.0.0 ]] || CONNECT_ADDR=127.0.0.1
[[ $CONNECT_ADDR != '::' ]] || CONNECT_ADDR=::1
if (exec 3<>"/dev/tcp/$CONNECT_ADDR/$PORT") 2>/dev/null; then
    die "port $PORT on $CONNECT_ADDR is in use"
fi

if [[ -e $PGDATA_NEW ]]; then
    [[ -d $PGDATA_NEW && -z $(ls -A "$PGDATA_NEW") ]] || die "$PGDATA_NEW exists and is not an empty directory"
fi
mkdir -p "$PGDATA_NEW"
PGDATA_NEW=$(cd "$PGDATA_NEW" && pwd)
LOG=${LOG:-$PGDATA_NEW.log}

T_ALL=$EPOCHREALTIME

# --- 1. Copy and verify. ----------------------------------------------------------------------------
T0=$EPOCHREALTIME
echo "$ME: copying the $FORMAT backup $BACKUP into $PGDATA_NEW"
if [[ $FORMAT == plain ]]; then
    cp -a "$BACKUP/." "$PGDATA_NEW/"
    rm -f "$PGDATA_NEW/tasklight-backup.txt"
    MANIFEST=$PGDATA_NEW/backup_manifest
else
    tar -xzf "$BACKUP/base.tar.gz" -C "$PGDATA_NEW"
    tar -xzf "$BACKUP/pg_wal.tar.gz" -C "$PGDATA_NEW/pg_wal"
    MANIFEST=$BACKUP/backup_manifest
fi
COPY_SECS=$(since "$T0")

T0=$EPOCHREALTIME
echo "$ME: verifying the copy with pg_verifybackup"
"$PG_BIN/pg_verifybackup" --quiet -m "$MANIFEST" "$PGDATA_NEW" ||
    die "pg_verifybackup failed on the copy in $PGDATA_NEW (errors above): the backup is damaged; try an older one"
VERIFY_SECS=$(since "$T0")

BACKUP_MAJOR=$(cat "$PGDATA_NEW/PG_VERSION")
SERVER_MAJOR=$("$PG_BIN/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
[[ $BACKUP_MAJOR == "$SERVER_MAJOR" ]] ||
    die "the backup is of PostgreSQL $BACKUP_MAJOR but $PG_BIN/postgres is $SERVER_MAJOR (set PG_BIN)"

# --- 2. Configure the recovery. ---------------------------------------------------------------------
if [[ ! -f $PGDATA_NEW/postgresql.conf ]]; then
    echo "$ME: the backup has no postgresql.conf (Debian keeps it in /etc/postgresql): writing a minimal one and a local-only pg_hba.conf; carry your settings over by hand, never data_directory, hba_file or ident_file" >&2
    printf '%s\n' "# Written by restore-pitr.sh: the backup had no postgresql.conf." >"$PGDATA_NEW/postgresql.conf"
    [[ -f $PGDATA_NEW/pg_hba.conf ]] || cat >"$PGDATA_NEW/pg_hba.conf" <<'EOF'
# Written by restore-pitr.sh: the backup had no pg_hba.conf. Local connections only.
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
EOF
    [[ -f $PGDATA_NEW/pg_ident.conf ]] || : >"$PGDATA_NEW/pg_ident.conf"
fi
if grep -Eq '^[[:space:]]*(data_directory|config_file)[[:space:]]*=' "$PGDATA_NEW/postgresql.conf"; then
    die "$PGDATA_NEW/postgresql.conf sets data_directory or config_file: the server would not use the restored directory; remove that line from the backup's copy and run again with an empty --pgdata"
fi
if [[ -n $SOCKET_DIR ]]; then
    mkdir -p "$SOCKET_DIR"
    [[ $SOCKET_DIR != *\'* ]] || die "--socket-dir may not contain a quote"
fi
[[ $LISTEN != *\'* ]] || die "--listen may not contain a quote"
{
    echo
    echo "# restore-pitr.sh $(date -u '+%Y-%m-%d %H:%M:%SZ'): recovery of $BACKUP to ${TARGET_SQL:-latest}"
    echo "port = $PORT"
    echo "listen_addresses = '$LISTEN'"
    echo "unix_socket_directories = '$SOCKET_DIR'"
    echo "archive_mode = off"
    echo "primary_conninfo = ''"
    echo "synchronous_standby_names = ''"
    echo "restore_command = 'cp \"$ARCHIVE/%f\" \"%p\"'"
    if [[ -n $TARGET_SQL ]]; then
        echo "recovery_target_time = '$TARGET_SQL'"
        echo "recovery_target_inclusive = on"
    fi
    echo "recovery_target_action = 'promote'"
} >>"$PGDATA_NEW/postgresql.auto.conf"
rm -f "$PGDATA_NEW/standby.signal" "$PGDATA_NEW/postmaster.pid" "$PGDATA_NEW/postmaster.opts"
: >"$PGDATA_NEW/recovery.signal"
: >>"$LOG"
if ((EUID == 0)); then
    chown -R "$RUN_AS:" "$PGDATA_NEW" "$LOG"
    [[ -z $SOCKET_DIR ]] || chown "$RUN_AS:" "$SOCKET_DIR"
fi
chmod 0700 "$PGDATA_NEW"

# --- 3. Start, and wait until recovery is over. -----------------------------------------------------
T0=$EPOCHREALTIME
echo "$ME: starting PostgreSQL on port $PORT (log: $LOG); replaying WAL from $ARCHIVE"
show_log() { pg_show_logs 25 "$LOG"; }
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_NEW" -l "$LOG" -w -t "$TIMEOUT" start >/dev/null || {
    show_log
    die "the server did not start (log above)"
}
DEADLINE=$((SECONDS + TIMEOUT))
state() { "$PG_BIN/pg_controldata" "$PGDATA_NEW" 2>/dev/null | sed -n 's/^Database cluster state: *//p'; }
psql_new() {
    local host=$CONNECT_ADDR
    [[ -z $SOCKET_DIR ]] || host=$SOCKET_DIR
    as_pg "$PG_BIN/psql" "${PG_PSQL_FLAGS[@]}" -h "$host" -p "$PORT" -d postgres "$@"
}
IN_RECOVERY=""
while :; do
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_NEW" status >/dev/null 2>&1; then
        show_log
        if grep -q 'recovery ended before configured recovery target was reached' "$LOG"; then
            echo "$ME: the WAL archive ends before the target: its last transaction is the 'last completed transaction' above; choose an earlier target, or --target latest" >&2
        fi
        die "the server stopped during recovery (log above); remove $PGDATA_NEW before trying again"
    fi
    if [[ $(state) == "in production" ]]; then
        IN_RECOVERY=$(psql_new -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)
        [[ $IN_RECOVERY != f ]] || break
    fi
    if ((SECONDS >= DEADLINE)); then
        die "recovery not over after $TIMEOUT s (state: $(state)); the server is left running: follow $LOG"
    fi
    sleep 0.2
done
RECOVERY_SECS=$(since "$T0")

STOP_LINE=$(grep -E 'recovery stopping (before|after)' "$LOG" | tail -n 1 | sed -E 's/^.*(recovery stopping)/\1/' || true)
LAST_TX=$(grep -E 'last completed transaction was at log time' "$LOG" | tail -n 1 | sed -E 's/^.*(last completed)/\1/' || true)
TIMELINE=$(psql_new -c 'SELECT timeline_id FROM pg_control_checkpoint()' 2>/dev/null || true)
echo "restored: $PGDATA_NEW (port $PORT, timeline ${TIMELINE:-?}, pg_is_in_recovery() = f)"
echo "target: ${TARGET_SQL:-latest}"
[[ -z $STOP_LINE ]] || echo "stopped: $STOP_LINE"
[[ -z $LAST_TX ]] || echo "last: $LAST_TX"
echo "seconds: $(since "$T_ALL") (copy $COPY_SECS, verification $VERIFY_SECS, start + WAL replay + promotion $RECOVERY_SECS)"
echo "connect: psql -h ${SOCKET_DIR:-$CONNECT_ADDR} -p $PORT -d <database>"
echo "stop: pg_ctl -D $PGDATA_NEW stop -m fast   (as $RUN_AS)"
echo "note: archive_mode is off here; before this cluster takes writes for good, give it a new archive directory and take a new base backup (README.md)"
