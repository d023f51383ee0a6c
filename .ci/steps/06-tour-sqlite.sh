# shellcheck shell=bash
# README curl tour on SQLite
# Against the server step 5 started (and exercised), or a fresh one when this step runs alone.
ensure_sqlite_server
# shellcheck disable=SC2153  # set by ensure_sqlite_server
run_tour "$SQLITE_ORIGIN" "$SQLITE_DIR/server.log" "$SQLITE_DIR"
stop_server "$SQLITE_PID"
SQLITE_PID=""
