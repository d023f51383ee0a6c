# shellcheck shell=bash
# fuzzing: cursor, request id, If-Match and X-Forwarded-For parsers
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them (run.sh
# sets it). Instrumented builds go to their own directory (run.sh's default,
# /var/tmp/tasklight-fuzz-target), outside the clone; a cold one takes about 13 minutes.
env -u CARGO_TARGET_DIR FUZZ_SECONDS=20 tests/fuzz/run.sh ||
    die "a fuzz target found a crash or a broken property (above)"
