# shellcheck shell=bash disable=SC2034  # (it sets variables for the scripts that source it)
# What the PostgreSQL scripts of deploy/postgres share (sourced, never run): backup.sh and
# restore-pitr.sh source it alone; check-pitr.sh, check-replica.sh and bench-backup.sh source it
# after .ci/lib.sh. Sourcing it defines functions and a few variables; it runs nothing. Every
# function may be called under `set -euo pipefail`.
#
#   messages    die, since, usage       (die and since only if not defined yet: .ci/lib.sh's stay)
#   waiting     wait_until, not
#   programs    pg_bin (PG_BIN), pg_os_user (PG_USER_OS, as_pg), pg_own, pg_owned_dir
#   psql        pg_psql (PG_PSQL_FLAGS), psql_at
#   clusters    pg_scratch (DIR, SOCK), pg_archive_command, pg_conf, pg_initdb, pg_start, pg_track,
#               pg_stop, pg_archive_current, pg_migrate
#   clean-up    pg_exit_hook (PG_CLUSTERS, PG_EXIT_LOGS, PG_EXIT_LINES, PG_STOP_SECONDS), pg_show_logs
#
# The clusters are the tests' own: on 127.0.0.1 only, trust authentication, the database user
# postgres, their unix sockets in a scratch directory. pg_scratch, pg_migrate and pg_exit_hook use
# .ci/lib.sh (scratch_dir, stop_pid, stop_server, BIN); the rest needs nothing but bash and PG_BIN.

# ---------------------------------------------------------------------------------------------------
# Messages.

if ! declare -F die >/dev/null; then
    # die MESSAGE...: MESSAGE on stderr, prefixed with $ME (default the script's name); exit 1.
    die() {
        echo "${ME:-${0##*/}}: $*" >&2
        exit 1
    }
fi
if ! declare -F since >/dev/null; then
    # since T: seconds (two decimals) from T, a value of $EPOCHREALTIME, until now.
    since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
fi
# usage: the script's header comment (from its line 3 to the line before `set -euo pipefail`),
# without the comment marks: its --help.
usage() { sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------------------------
# Waiting.

# wait_until SECONDS COMMAND...: runs COMMAND (a program or a function, in this shell) every 0.1 s
# until it succeeds; after SECONDS (a whole number) one last try, whose status it returns.
wait_until() {
    local tries=$(($1 * 10)) i
    shift
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}

# not COMMAND...: succeeds when COMMAND fails (wait_until 30 not alive "$PID").
not() { ! "$@"; }

# ---------------------------------------------------------------------------------------------------
# The PostgreSQL programs, and the OS user that runs them.

PG15_BIN=/usr/lib/postgresql/15/bin # Debian's postgresql-15 (and postgresql-client-15)

# pg_bin [--any] TOOL...: makes sure PG_BIN, the directory of the PostgreSQL programs, holds every
# TOOL, or dies. Unless set, PG_BIN is PG15_BIN. With --any (the scripts an operator runs on a
# database host) it is PG15_BIN only if the first TOOL is there, else the directory of the first
# TOOL on the PATH. Not exported: export PG_BIN where the children must use the same.
pg_bin() {
    local any="" tool
    if [[ ${1:-} == --any ]]; then
        any=1
        shift
    fi
    if [[ -z ${PG_BIN:-} ]]; then
        PG_BIN=$PG15_BIN
        if [[ -n $any && ! -x $PG_BIN/$1 ]]; then
            PG_BIN=$(dirname "$(command -v "$1" || echo "/nonexistent/$1")")
        fi
    fi
    for tool in "$@"; do
        [[ ! -x $PG_BIN/$tool ]] || continue
        [[ -z $any ]] ||
            die "$tool not found in $PG_BIN (Debian: apt-get install postgresql-15; or set PG_BIN)"
        die "$PG_BIN/$tool is missing: the PostgreSQL 15 server binaries are required (Debian: apt-get install postgresql-15; or set PG_BIN)"
    done
}

# pg_os_user [USER [MESSAGE]]: who runs the PostgreSQL programs: as root USER (default postgres:
# PostgreSQL refuses to run as root), which must exist (else it dies with MESSAGE); otherwise you.
# Sets PG_USER_OS, and defines as_pg COMMAND...: runs the program COMMAND (not a shell function)
# as PG_USER_OS (runuser as root).
pg_os_user() {
    # shellcheck disable=SC2317  # as_pg runs later, when called
    if ((EUID == 0)); then
        PG_USER_OS=postgres
        (($# == 0)) || PG_USER_OS=$1
        id -u "$PG_USER_OS" >/dev/null 2>&1 ||
            die "${2:-running as root needs the OS user $PG_USER_OS (PostgreSQL refuses to run as root)}"
        as_pg() { runuser -u "$PG_USER_OS" -- "$@"; }
    else
        PG_USER_OS=$(id -un)
        as_pg() { "$@"; }
    fi
}

# pg_own PATH...: as root, gives each PATH (not what is inside) to PG_USER_OS; else nothing.
pg_own() {
    ((EUID != 0)) || chown "$PG_USER_OS:" "$@"
}

# pg_owned_dir MODE DIR...: makes each DIR (it must not exist) with MODE, PG_USER_OS's.
pg_owned_dir() {
    local mode=$1
    shift
    mkdir -m "$mode" "$@"
    pg_own "$@"
}

# ---------------------------------------------------------------------------------------------------
# psql.

PG_PSQL_FLAGS=(-X -A -t -q -v ON_ERROR_STOP=1) # no psqlrc; bare values; stop at the first error

# pg_psql ARG...: PG_BIN's psql with PG_PSQL_FLAGS and the ARGs (connection options, -c SQL...).
pg_psql() { "$PG_BIN/psql" "${PG_PSQL_FLAGS[@]}" "$@"; }

# psql_at PORT DB ARG...: pg_psql as the database user postgres on 127.0.0.1:PORT, database DB.
psql_at() {
    local port=$1 db=$2
    shift 2
    pg_psql -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}

# ---------------------------------------------------------------------------------------------------
# The tests' clusters. Call pg_os_user first.

PG_CLUSTERS=()       # data directories pg_exit_hook stops (pg_start and pg_track add to it)
PG_EXIT_LOGS=()      # files pg_exit_hook shows the end of after a failure
PG_EXIT_LINES=15     # how many of their last lines
PG_STOP_SECONDS=30   # how long pg_stop waits for a fast shutdown

# pg_scratch NAME: DIR, a scratch directory named after NAME (scratch_dir of .ci/lib.sh: removed on
# exit unless SCRATCH_KEEP is set) that PG_USER_OS may pass through (0711) to what it owns inside,
# and SOCK=DIR/sock, PG_USER_OS's, for the clusters' unix sockets.
pg_scratch() {
    DIR=""
    scratch_dir DIR "$1"
    chmod 0711 "$DIR"
    SOCK=$DIR/sock
    pg_owned_dir 0755 "$SOCK"
}

# pg_archive_command ARCHIVE: prints the archive_command of README.md for the directory ARCHIVE
# (copy, sync, rename, sync; an identical file already there counts as archived).
pg_archive_command() {
    local a=$1
    printf '%s\n' "test ! -f $a/%f && cp %p $a/%f.part && sync $a/%f.part && mv $a/%f.part $a/%f && sync $a || cmp -s %p $a/%f"
}

# pg_conf PGDATA COMMENT [SETTING...]: appends to PGDATA/postgresql.conf an empty line, "# COMMENT"
# and a line per SETTING ("name = value"); later lines win over earlier ones.
pg_conf() {
    local conf=$1/postgresql.conf comment=$2
    shift 2
    {
        echo
        echo "# $comment"
        printf '%s\n' "$@"
    } >>"$conf"
}

# pg_initdb PGDATA PORT SOCKET_DIR COMMENT [SETTING...]: a new cluster in PGDATA (made here, 0700,
# PG_USER_OS's): initdb as PG_USER_OS with the database user postgres, trust authentication,
# UTF8, locale C.UTF-8 (its output in initdb.log beside PGDATA; dies with its end if it fails),
# then pg_conf with COMMENT: listen on 127.0.0.1:PORT only, the unix socket in SOCKET_DIR, the
# SETTINGs.
pg_initdb() {
    local pgdata=$1 port=$2 socket_dir=$3 comment=$4 log
    shift 4
    log=$(dirname "$pgdata")/initdb.log
    pg_owned_dir 0700 "$pgdata"
    as_pg "$PG_BIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$log" 2>&1 ||
        die "initdb failed: $(tail -n 5 "$log")"
    pg_conf "$pgdata" "$comment" "listen_addresses = '127.0.0.1'" "port = $port" \
        "unix_socket_directories = '$socket_dir'" "$@"
}

# pg_track PGDATA: pg_exit_hook stops the cluster in PGDATA (if it runs then).
pg_track() { PG_CLUSTERS+=("$1"); }

# pg_start PGDATA WHAT: pg_track PGDATA, then starts its cluster as PG_USER_OS, the server's log in
# PGDATA.log, and waits (30 s at most) until it accepts connections (pg_ctl -w); dies "WHAT did
# not start" if it does not.
pg_start() {
    local pgdata=$1 what=$2 log=$1.log
    : >>"$log"
    pg_own "$log"
    pg_track "$pgdata"
    as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$log" -w -t 30 start >/dev/null || die "$what did not start"
}

# pg_stop PGDATA: stops the cluster in PGDATA if it runs: a fast shutdown (PG_STOP_SECONDS at
# most), else an immediate one. Never fails.
pg_stop() {
    [[ -f $1/postmaster.pid ]] || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$1" stop -m fast -t "$PG_STOP_SECONDS" >/dev/null 2>&1 ||
        as_pg "$PG_BIN/pg_ctl" -D "$1" stop -m immediate >/dev/null 2>&1 || true
}

# pg_archive_current PORT ARCHIVE SECONDS: on the cluster at 127.0.0.1:PORT, switches to a new WAL
# segment and waits until the one it was writing, LAST_SEGMENT (set here), is in ARCHIVE; dies,
# with pg_stat_archiver, if it is not after SECONDS.
pg_archive_current() {
    local port=$1 archive=$2 seconds=$3
    LAST_SEGMENT=$(psql_at "$port" postgres -c 'SELECT pg_walfile_name(pg_current_wal_lsn())')
    psql_at "$port" postgres -c 'SELECT pg_switch_wal()' >/dev/null
    wait_until "$seconds" test -f "$archive/$LAST_SEGMENT" ||
        die "$LAST_SEGMENT not archived within $seconds s: $(psql_at "$port" postgres -c 'SELECT * FROM pg_stat_archiver')"
}

# pg_migrate DIR ENV_ARG...: `$BIN migrate` in DIR under `env ENV_ARG...` (-i first for an empty
# environment), its output in DIR/migrate.log; dies with the end of it if it fails.
pg_migrate() {
    local dir=$1
    shift
    (cd "$dir" && env "$@" "$BIN" migrate >"$dir/migrate.log" 2>&1) ||
        die "tasklight migrate failed: $(tail -n 5 "$dir/migrate.log")"
}

# ---------------------------------------------------------------------------------------------------
# Clean-up.

# pg_show_logs LINES FILE...: on stderr, the last LINES lines of each FILE that is not empty, each
# under a line "--- last lines of FILE:".
pg_show_logs() {
    local lines=$1 f
    shift
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f:" >&2
        tail -n "$lines" "$f" >&2
    done
}

# pg_exit_hook STATUS: the hook to give `on_exit` (.ci/lib.sh), run before its cleanup_resources.
# Stops the helper processes (a writer, k6...) and the servers .ci/lib.sh started, then every
# cluster of PG_CLUSTERS (pg_stop), so that nothing writes into the scratch directory as it is
# removed. When STATUS is not 0: pg_show_logs PG_EXIT_LINES of PG_EXIT_LOGS, and which scratch
# directories are kept (SCRATCH_KEEP).
# shellcheck disable=SC2317  # run by the EXIT trap
pg_exit_hook() {
    local pid d
    for pid in "${HELPER_PIDS[@]}"; do stop_pid "$pid" 10; done
    for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
    for d in "${PG_CLUSTERS[@]}"; do pg_stop "$d"; done
    if (($1 != 0)); then
        pg_show_logs "$PG_EXIT_LINES" "${PG_EXIT_LOGS[@]}"
        if [[ -n ${SCRATCH_KEEP:-} ]]; then
            for d in "${SCRATCH_DIRS[@]}"; do echo "${ME:-${0##*/}}: kept $d" >&2; done
        fi
    fi
}
