# shellcheck shell=bash
# formatting, lints and layering rules
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The layering rules of src/ (which module may use which), and their own self-test.
python3 .ci/layers.py
python3 .ci/layers_selftest.py
