#!/usr/bin/env bash
# Fuzzes Tasklight's client-input parsers with cargo-fuzz (libFuzzer), each target for a bounded
# time, and fails if any target finds a crash (a panic, a failed property, a sanitizer report).
#
#   tests/fuzz/run.sh                 # every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=60 tests/fuzz/run.sh cursor etag
#
# Environment:
#   FUZZ_SECONDS      fuzzing time per target (default 20)
#   FUZZ_SANITIZER    address (default) or none (faster, but only panics are caught)
#   CARGO_TARGET_DIR  build directory (default /var/tmp/tasklight-fuzz-target, outside the clone)
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes.
# Crashing inputs are kept in tests/fuzz/artifacts/<target>/, the grown corpus in
# tests/fuzz/corpus/<target>/ (both ignored by git), the libFuzzer logs in
# $CARGO_TARGET_DIR/fuzz-logs/.
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$FUZZ_DIR/../.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tasklight-fuzz-target}
export RUSTC_BOOTSTRAP=1
# The bundled SQLite (libsqlite3-sys) trips ASan's one-definition-rule check at start-up.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0

if ! [[ $FUZZ_SECONDS =~ ^[1-9][0-9]*$ ]]; then
    echo "FUZZ_SECONDS must be a positive whole number of seconds, not '$FUZZ_SECONDS'" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

fuzz=(cargo fuzz)
common=(--fuzz-dir "$FUZZ_DIR" --sanitizer "$FUZZ_SANITIZER")

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir "$FUZZ_DIR")
fi

echo "== building ${targets[*]} (sanitizer: $FUZZ_SANITIZER, target dir: $CARGO_TARGET_DIR)"
for target in "${targets[@]}"; do
    "${fuzz[@]}" build "${common[@]}" "$target"
done

logs="$CARGO_TARGET_DIR/fuzz-logs"
mkdir -p "$logs"
failed=()
summary=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${FUZZ_SECONDS}s"
    corpus="$FUZZ_DIR/corpus/$target"
    mkdir -p "$corpus"
    log="$logs/$target.log"
    status=ok
    if ! "${fuzz[@]}" run "${common[@]}" "$target" "$corpus" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        status=CRASH
        failed+=("$target")
    fi
    # libFuzzer's last words: "#123456 DONE cov: .. exec/s: 6172 rss: ..", then the final stats.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [[ -z $execs ]]; then
        execs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
    fi
    if [[ -z $rate ]]; then
        rate=$(sed -n 's/^#.*DONE.*exec\/s: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || true
    line="$(printf '%-12s %-6s %12s executions %8s exec/s' "$target" "$status" "${execs:-?}" "${rate:-?}")"
    summary+=("$line")
    echo "$line"
    if [[ $status != ok ]]; then
        echo "---- $target: what failed (whole log: $log)"
        grep -E -A 4 "panicked at|^==[0-9]+==ERROR|^SUMMARY:|deadly signal|^Error:" "$log" | head -n 40 || true
        echo "---- crashing inputs: $FUZZ_DIR/artifacts/$target/"
        echo "---- reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz $target <artifact>"
    fi
done

echo "== summary (${FUZZ_SECONDS}s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "no crashes"
