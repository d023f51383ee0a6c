# shellcheck shell=bash
# hot path: ratios to bare poem and to pgbench, short form (printed; noise does not fail CI), and
# the instructions per cached read counted by callgrind (a budget that does fail CI)
# loadtests/bench-hotpath.sh with one round of 3 s per figure: it fails only if it cannot run, a
# request fails, or telemetry all loses something (requests, access lines with their ids and
# server spans at the sink must be equal, nothing counted as dropped). Its full form (3 rounds of 8 s) is what README's performance table reports.
ensure_base_tools
ensure_release_binary
need wrk wrk
need taskset util-linux
need pgbench postgresql-client
ROUNDS=1 DURATION=3s BIN="$BIN" loadtests/bench-hotpath.sh ||
    die "the hot-path benchmark could not run, a request in it failed, or telemetry dropped something (above)"
need valgrind valgrind
need callgrind_control valgrind
BIN="$BIN" loadtests/instructions-hotpath.sh ||
    die "instructions per cached read are over budget, or the count could not run (above)"
