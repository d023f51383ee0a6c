# shellcheck shell=bash
# tests: cargo test (SQLite), then on PostgreSQL
ensure_base_tools
# The multi-instance (Redis) tests run in both passes; with CI set they fail without Redis.
export TEST_REDIS_URL=$REDIS_SERVER
cargo test
TEST_DATABASE_URL=$PG_SERVER/test cargo test
