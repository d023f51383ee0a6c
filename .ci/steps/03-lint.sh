# shellcheck shell=bash
# formatting, lints and layering rules
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The layering rules of src/ (which module may use which), and their own self-test.
python3 .ci/layers.py
python3 .ci/layers_selftest.py
# PostgreSQL migrations that would lock a table with data for long or break the release still
# running beside them (README, "Schema changes without downtime"), and the lint's own self-test.
python3 .ci/migration_lint.py
python3 .ci/migration_lint_selftest.py
