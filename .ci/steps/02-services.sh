# shellcheck shell=bash
# services: PostgreSQL and Redis must be reachable
ensure_base_tools
pg_isready -h "$PG_HOST" -p "$PG_PORT" -t 10 ||
    die "PostgreSQL is not accepting connections on $PG_HOST:$PG_PORT"
[[ $(psql -d "$PG_SERVER/test" -X -qtAc 'select 1') == 1 ]] ||
    die "cannot run a query on $PG_SERVER/test"
redis_answer=$(redis-cli -u "$REDIS_SERVER" ping 2>&1 || true)
[[ $redis_answer == PONG ]] ||
    die "Redis on $REDIS_HOST:$REDIS_PORT did not answer PONG to ping (it said: $redis_answer)"
echo "PostgreSQL and Redis are up"
