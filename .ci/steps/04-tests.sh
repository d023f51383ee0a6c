# shellcheck shell=bash
# tests: cargo test (SQLite), then on PostgreSQL
ensure_base_tools
# The multi-instance (Redis) tests run in both passes; with CI set they fail without Redis.
export TEST_REDIS_URL=$REDIS_SERVER
# The email-verification tests read what a real SMTP server on loopback (aiosmtpd, started by the
# tests from tests/smtp_sink.py) received, and the webhook tests verify every signature with the
# standardwebhooks package (tests/webhook_verify.py); with CI set they fail without them.
ensure_venv aiosmtpd standardwebhooks
export TEST_PYTHON=$VENV/bin/python
cargo test
TEST_DATABASE_URL=$PG_SERVER/test cargo test
