#!/usr/bin/env bash
# Checks the Prometheus configuration, rules and rule unit tests under observability/prometheus
# with promtool, then prints how many alerting rules, recording rules and alert test cases there
# are, and fails unless every alert has a test case where it fires and one where it does not.
#
# Usage: observability/check-prometheus.sh   (from any directory)
# Needs promtool (Debian package `prometheus`); installs nothing. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/prometheus"
config="$dir/prometheus.yml"

fail() {
    echo "check-prometheus: FAILED: $*" >&2
    exit 1
}

command -v promtool >/dev/null 2>&1 ||
    fail "promtool not found on PATH; install the Debian package prometheus (apt-get install -y prometheus), which provides /usr/bin/promtool"
echo "== $(promtool --version 2>&1 | head -n 1)"

shopt -s nullglob
rule_files=("$dir"/rules/*.yml)
test_files=("$dir"/tests/*.yml)
shopt -u nullglob
[ "${#rule_files[@]}" -gt 0 ] || fail "no rule files in $dir/rules"
[ "${#test_files[@]}" -gt 0 ] || fail "no test files in $dir/tests"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. The configuration as compose mounts it. Its rule_files are container paths
#    (/etc/prometheus/rules/*.yml), which do not exist here, so check its syntax only...
echo "== promtool check config --syntax-only prometheus.yml"
promtool check config --syntax-only "$config" || fail "promtool check config --syntax-only $config"

# ...then check a copy whose rule_files point at this repository's rules, so that check config
# also loads and validates every rule file, and make sure it found all of them (a glob that
# matches nothing would pass silently).
grep -q '/etc/prometheus/rules/\*\.yml' "$config" ||
    fail "$config no longer loads /etc/prometheus/rules/*.yml; update this script"
sed "s#/etc/prometheus/rules/\*\.yml#$dir/rules/*.yml#" "$config" >"$tmp/prometheus.yml"
echo "== promtool check config (rule_files pointed at observability/prometheus/rules)"
promtool check config --lint=all --lint-fatal "$tmp/prometheus.yml" | tee "$tmp/config.out" ||
    fail "promtool check config $config (with the repository's rule files)"
found="$(sed -n 's/.*SUCCESS: \([0-9][0-9]*\) rule files found.*/\1/p' "$tmp/config.out")"
[ "$found" = "${#rule_files[@]}" ] ||
    fail "check config found ${found:-no} rule files, the repository has ${#rule_files[@]}"

# 2. The rule files on their own, with every lint.
echo "== promtool check rules"
promtool check rules --lint=all --lint-fatal "${rule_files[@]}" | tee "$tmp/rules.out" ||
    fail "promtool check rules"

# 3. The unit tests.
echo "== promtool test rules"
promtool test rules "${test_files[@]}" || fail "promtool test rules"

# 4. Counts, cross-checked with promtool's own count of rules.
alerting="$(cat "${rule_files[@]}" | grep -cE '^[[:space:]]*- alert:' || true)"
recording="$(cat "${rule_files[@]}" | grep -cE '^[[:space:]]*- record:' || true)"
promtool_total="$(sed -n 's/.*SUCCESS: \([0-9][0-9]*\) rules found.*/\1/p' "$tmp/rules.out" |
    awk '{ n += $1 } END { print n + 0 }')"
[ "$((alerting + recording))" = "$promtool_total" ] ||
    fail "counted $alerting alerting + $recording recording rules, promtool found $promtool_total"

# Each alert_rule_test entry: its alertname, and whether it expects alerts (a non-empty
# exp_alerts list) or none (`exp_alerts: []` or no exp_alerts). Prints "alertname firing|quiet".
awk '
    function flush() {
        if (name != "") print name, (firing ? "firing" : "quiet")
        name = ""; firing = 0
    }
    /^[[:space:]]*alert_rule_test:/ { flush(); in_alerts = 1; next }
    /^[[:space:]]*(promql_expr_test|input_series|external_labels|- name|- interval|- input_series):/ { flush(); in_alerts = 0 }
    in_alerts && /^[[:space:]]*- (eval_time|alertname|exp_alerts):/ { flush() }
    in_alerts && /^[[:space:]]*(- )?alertname:/ {
        line = $0; sub(/^[^:]*:[[:space:]]*/, "", line); sub(/[[:space:]]*(#.*)?$/, "", line)
        gsub(/["\047]/, "", line); name = line
    }
    in_alerts && /^[[:space:]]*(- )?exp_alerts:[[:space:]]*(#.*)?$/ { firing = 1 }
    END { flush() }
' "${test_files[@]}" >"$tmp/cases"
cases="$(wc -l <"$tmp/cases" | tr -d ' ')"
firing_cases="$(grep -c ' firing$' "$tmp/cases" || true)"
quiet_cases="$(grep -c ' quiet$' "$tmp/cases" || true)"
expr_tests="$(cat "${test_files[@]}" | grep -cE '^[[:space:]]*- expr:' || true)"

missing=""
alert_names="$(cat "${rule_files[@]}" | sed -n 's/^[[:space:]]*- alert:[[:space:]]*\([A-Za-z0-9_]*\).*/\1/p' | sort -u)"
for alert in $alert_names; do
    grep -qx "$alert firing" "$tmp/cases" || missing="$missing\n  $alert: no test case where it fires"
    grep -qx "$alert quiet" "$tmp/cases" || missing="$missing\n  $alert: no test case where it does not fire"
done
unknown="$(awk '{ print $1 }' "$tmp/cases" | sort -u | grep -vxF "$alert_names" || true)"
[ -z "$unknown" ] || fail "test cases for alerts no rule defines: $(echo "$unknown" | tr '\n' ' ')"

echo "== summary"
echo "alerting rules:          $alerting ($(echo "$alert_names" | wc -w | tr -d ' ') alert names)"
echo "recording rules:         $recording"
echo "alert unit-test cases:   $cases ($firing_cases expect alerts, $quiet_cases expect none)"
echo "expression test cases:   $expr_tests"
if [ -n "$missing" ]; then
    printf "missing alert tests:%b\n" "$missing" >&2
    fail "every alert needs a test case where it fires and one where it does not"
fi
echo "every alert has a test case where it fires and one where it does not"
echo "check-prometheus: OK"
