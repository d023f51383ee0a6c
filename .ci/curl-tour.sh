#!/usr/bin/env bash
# Runs README.md's "Two-minute curl tour" word for word against a running Tasklight server.
#
#   .ci/curl-tour.sh [ORIGIN]        ORIGIN defaults to http://localhost:8080
#
# The tour is the first ```bash block after the "Two-minute curl tour" heading. The only change made
# to it is the origin: every `http://localhost:8080` becomes ORIGIN. It runs under `bash -euo
# pipefail`, so any failing command (the tour uses `curl -fsS`, so any HTTP error) fails this script.
# The tour's last step prints the status of a PATCH with a stale If-Match; it must be 412.
# The tour's `verify-email` step runs "${TASKLIGHT:-./target/release/tasklight}": set TASKLIGHT (in
# the environment) to a command that runs the binary against the server's database (CI's
# run_tour writes such a wrapper).
set -euo pipefail

origin=${1:-http://localhost:8080}
origin=${origin%/}
readme="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/README.md"

fail() {
    echo "curl-tour: $*" >&2
    exit 1
}

[[ -f $readme ]] || fail "cannot find $readme"

tour=$(awk '
    /^#+[[:space:]]+Two-minute curl tour/ { heading = 1; next }
    heading && !block && /^```bash[[:space:]]*$/ { block = 1; next }
    block && /^```[[:space:]]*$/ { closed = 1; exit }
    block { print }
    END { if (!closed) exit 1 }
' "$readme") || fail "no closed \`\`\`bash block after the 'Two-minute curl tour' heading in README.md"
[[ -n $tour ]] || fail "the tour block in README.md is empty"
[[ $tour == *"http://localhost:8080"* ]] || fail "the tour does not mention http://localhost:8080, so its origin cannot be replaced"

tour=${tour//"http://localhost:8080"/"$origin"}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
printf '%s\n' "$tour" >"$workdir/tour.sh"

echo "curl-tour: running the README tour against $origin"
# Run it in an empty directory, so nothing it might write lands in the work tree.
if ! (cd "$workdir" && bash -euo pipefail ./tour.sh) | tee "$workdir/output"; then
    fail "the tour failed (see the output above)"
fi

last=$(tail -n 1 "$workdir/output")
[[ $last == 412 ]] || fail "the tour's last step should print 412 (stale If-Match), it printed '$last'"
echo "curl-tour: OK (every step succeeded; the stale If-Match got 412)"
