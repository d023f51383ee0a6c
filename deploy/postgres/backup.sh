#!/usr/bin/env bash
# An online base backup of a PostgreSQL cluster with pg_basebackup, verified before it counts.
#
# Usage: deploy/postgres/backup.sh [--tar] [--spread] DEST [CONNECTION OPTION...]
#
#   DEST                  the directory of backups; this backup goes to DEST/<UTC time>, for example
#                         DEST/20250612T140312Z (made here, never reused)
#   CONNECTION OPTION...  libpq options passed to pg_basebackup (and to psql, for a few checks):
#                         -h HOST -p PORT -U USER, or -d 'postgres://USER@HOST:PORT/postgres'.
#                         The user needs the REPLICATION attribute (or to be a superuser) and a
#                         `replication` line in pg_hba.conf; passwords as usual (PGPASSWORD,
#                         ~/.pgpass). The server needs max_wal_senders >= 2 (default 10).
#   --tar                 compressed: base.tar.gz + pg_wal.tar.gz (about a third of the size here,
#                         see README.md), verified by unpacking into a scratch directory beside it
#   --spread              start with a spread checkpoint (less I/O at once, but the backup may wait
#                         up to checkpoint_timeout * checkpoint_completion_target to start) instead
#                         of an immediate one
#
# Environment: PG_BIN, the directory of the PostgreSQL client programs (default
# /usr/lib/postgresql/15/bin when it exists, else the PATH); their major version must be the
# server's.
#
# What it does:
#   1. pg_basebackup -D DEST/<time> -X stream --checkpoint=fast (-Fp, or -Ft -z with --tar), with
#      a backup manifest (CRC32C of every file). -X stream copies the WAL written during the backup
#      over a second connection while the files are copied, so the backup is self-contained:
#      restored alone it reaches a consistent state even if the WAL archive is lost (-X fetch would
#      fetch that WAL at the end and fail if the server had recycled it meanwhile).
#   2. pg_verifybackup: every file against the manifest (present, size, checksum) and the WAL from
#      the backup's start to its end parsed with pg_waldump. PostgreSQL 15's pg_verifybackup reads
#      only plain directories, which is why the default is plain (-Fp): it is verified in place,
#      and restoring it is a copy. With --tar it is unpacked into DEST/.verify-<time> first.
#   3. Writes DEST/<time>/tasklight-backup.txt (when it started and finished, the server, the WAL
#      range, the size), which restore-pitr.sh reads to refuse a target time before the backup.
#   4. Prints the directory, its size and the seconds taken. On a failed verification the
#      directory is renamed <time>.unverified and the exit status is 1.
#
# A base backup alone restores the cluster as it was when the backup ended. To restore to any later
# moment you also need the WAL archive (archive_mode=on, archive_command): see README.md.
#
# Example, on the database host as the postgres user:
#   deploy/postgres/backup.sh /var/backups/postgres -h /var/run/postgresql -U postgres
# Keep backups and the WAL archive on another disk, preferably another machine.
set -euo pipefail

ME=${0##*/}
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh" # die, usage, since, pg_bin...

FORMAT=plain CHECKPOINT=fast
while (($# > 0)); do
    case $1 in
    --tar) FORMAT=tar ;;
    --spread) CHECKPOINT=spread ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (the connection options go after DEST; see --help)" ;;
    *) break ;;
    esac
    shift
done
(($# >= 1)) || die "usage: $ME [--tar] [--spread] DEST [CONNECTION OPTION...] (see --help)"
DEST=$1
shift
CONN=("$@")

pg_bin --any pg_basebackup pg_verifybackup psql

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
# Named by the second it starts: a second backup within the same second waits for the next one.
for ((i = 0; i < 20; i++)); do
    NAME=$(date -u +%Y%m%dT%H%M%SZ)
    DIR=$DEST/$NAME
    [[ -e $DIR || -e $DIR.unverified ]] || break
    sleep 0.1
done
[[ ! -e $DIR && ! -e $DIR.unverified ]] || die "$DIR exists already"

# The checks below are worth a warning, not a failure: the backup itself needs only replication.
sql() { pg_psql "${CONN[@]}" -c "$1" 2>/dev/null; }
SERVER_VERSION=$(sql 'SHOW server_version' || true)
if [[ -n $SERVER_VERSION ]]; then
    ARCHIVE_MODE=$(sql 'SHOW archive_mode' || true)
    [[ $ARCHIVE_MODE != off ]] ||
        echo "$ME: warning: archive_mode is off on this server: this backup can restore only to the moment it ends, not to a later point in time (see README.md)" >&2
    SERVER_MAJOR=$(($(sql 'SHOW server_version_num') / 10000))
    CLIENT_MAJOR=$("$PG_BIN/pg_basebackup" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
    [[ $SERVER_MAJOR == "$CLIENT_MAJOR" ]] ||
        die "the server is PostgreSQL $SERVER_VERSION but $PG_BIN is $CLIENT_MAJOR: use the server's major version (PG_BIN)"
else
    echo "$ME: note: could not run SQL with these connection options (only a replication connection?); skipping the archive_mode and version checks" >&2
fi

STARTED_AT=$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')
T0=$EPOCHREALTIME
FORMAT_ARGS=(-Fp)
[[ $FORMAT == plain ]] || FORMAT_ARGS=(-Ft -z)
echo "$ME: base backup into $DIR ($FORMAT, WAL streamed, $CHECKPOINT checkpoint)"
"$PG_BIN/pg_basebackup" "${CONN[@]}" -D "$DIR" "${FORMAT_ARGS[@]}" -X stream --checkpoint="$CHECKPOINT" \
    --label="tasklight $NAME" --manifest-checksums=CRC32C --no-password ||
    die "pg_basebackup failed (it removed what it had written)"
FINISHED_AT=$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')
BACKUP_SECS=$(since "$T0")

T1=$EPOCHREALTIME
echo "$ME: verifying with pg_verifybackup"
verify_failed() {
    mv "$DIR" "$DIR.unverified"
    die "verification failed: $*; the backup is kept as $DIR.unverified, do not rely on it"
}
if [[ $FORMAT == plain ]]; then
    "$PG_BIN/pg_verifybackup" --quiet "$DIR" || verify_failed "pg_verifybackup reported the errors above"
else
    SCRATCH=$DEST/.verify-$NAME
    rm -rf "$SCRATCH"
    mkdir -m 0700 "$SCRATCH"
    # shellcheck disable=SC2064  # expand now
    trap "rm -rf '$SCRATCH'" EXIT
    tar -xzf "$DIR/base.tar.gz" -C "$SCRATCH" || verify_failed "base.tar.gz does not unpack"
    mkdir -p "$SCRATCH/pg_wal"
    tar -xzf "$DIR/pg_wal.tar.gz" -C "$SCRATCH/pg_wal" || verify_failed "pg_wal.tar.gz does not unpack"
    "$PG_BIN/pg_verifybackup" --quiet -m "$DIR/backup_manifest" "$SCRATCH" ||
        verify_failed "pg_verifybackup reported the errors above (on the unpacked copy)"
    rm -rf "$SCRATCH"
    trap - EXIT
fi
VERIFY_SECS=$(since "$T1")

manifest_value() { grep -o "\"$1\": *\"[^\"]*\"" "$DIR/backup_manifest" | head -n 1 | sed -E 's/.*: *"([^"]*)"/\1/'; }
BYTES=$(du -sb "$DIR" | cut -f 1)
HUMAN=$(numfmt --to=iec-i --suffix=B "$BYTES" 2>/dev/null || echo "$BYTES bytes")
cat >"$DIR/tasklight-backup.txt" <<EOF
# Written by deploy/postgres/backup.sh; read by deploy/postgres/restore-pitr.sh.
name=$NAME
format=$FORMAT
started_at=$STARTED_AT
finished_at=$FINISHED_AT
server_version=${SERVER_VERSION:-unknown}
timeline=$(grep -o '"Timeline": *[0-9]*' "$DIR/backup_manifest" | head -n 1 | grep -o '[0-9]*$')
start_lsn=$(manifest_value Start-LSN)
end_lsn=$(manifest_value End-LSN)
bytes=$BYTES
backup_seconds=$BACKUP_SECS
verify_seconds=$VERIFY_SECS
verified_by=pg_verifybackup
EOF

echo "backup: $DIR"
echo "format: $FORMAT ($(if [[ $FORMAT == plain ]]; then echo "a data directory"; else echo "base.tar.gz, pg_wal.tar.gz"; fi)), verified by pg_verifybackup"
echo "wal: $(manifest_value Start-LSN) .. $(manifest_value End-LSN)"
echo "size: $BYTES bytes ($HUMAN)"
echo "seconds: $(awk -v a="$BACKUP_SECS" -v b="$VERIFY_SECS" 'BEGIN { printf "%.2f", a + b }') (pg_basebackup $BACKUP_SECS, verification $VERIFY_SECS)"
