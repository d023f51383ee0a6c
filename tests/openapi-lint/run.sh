#!/usr/bin/env bash
# Lints an OpenAPI document with Redocly CLI (`recommended`) and Spectral (`spectral:oas` plus the
# OWASP API Security ruleset, see .spectral.yaml) and fails on any error from either; prints the
# counts per tool and rule. Then checks that Spectral's replacement rules (.spectral.yaml) still
# catch what they replace, on a copy of the document with one gap planted for each.
#
#   tests/openapi-lint/run.sh DOCUMENT      a file, such as the served /api/v1/openapi.json
#
# Needs Node 20 and npm; the tools come from package-lock.json through `npm ci`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
doc=$(realpath "${1:?usage: run.sh DOCUMENT}")
say() { echo "openapi-lint: $*"; }
die() {
    echo "openapi-lint: FAILED: $*" >&2
    exit 1
}
cd "$here"
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

counts() { # counts TOOL JSON
    python3 - "$1" "$2" <<'PY'
import collections, json, sys
tool, path = sys.argv[1], sys.argv[2]
data = json.load(open(path))
if tool == "redocly":
    items = [(p["severity"], p["ruleId"]) for p in data["problems"]]
else:
    names = {0: "error", 1: "warn", 2: "info", 3: "hint"}
    items = [(names[p["severity"]], p["code"]) for p in data]
totals = collections.Counter(s for s, _ in items)
print(f"openapi-lint: {tool}: {totals['error']} errors, {totals['warn']} warnings")
for (severity, rule), n in sorted(collections.Counter(items).items()):
    print(f"openapi-lint:   {severity:5} {rule}: {n}")
PY
}

status=0
npx --no-install redocly lint --extends recommended --format=stylish "$doc" || status=1
npx --no-install redocly lint --extends recommended --format=json "$doc" >"$scratch/redocly.json" 2>/dev/null || true
npx --no-install spectral lint --ruleset .spectral.yaml --fail-severity error "$doc" || status=1
npx --no-install spectral lint --ruleset .spectral.yaml -f json -o "$scratch/spectral.json" "$doc" >/dev/null 2>&1 || true
counts redocly "$scratch/redocly.json"
counts spectral "$scratch/spectral.json"
((status == 0)) || die "a linter reported errors (above)"

# The replacement rules must still fire: plant one gap for each and expect exactly its error.
python3 - "$doc" "$scratch/planted.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
paths = doc["paths"]
read = next(p for p in paths if p.startswith("/api/v1/") and "get" in paths[p] and paths[p]["get"].get("security"))
write = next(p for p in paths if p.startswith("/api/v1/") and not p.startswith("/api/v1/auth/")
             and "post" in paths[p] and paths[p]["post"].get("security"))
paths[read]["get"]["security"] = []
paths[write]["post"]["security"] = []
del paths[read]["get"]["responses"]["200"]["headers"]["RateLimit"]
bounded = next(s for s in doc["components"]["schemas"].values()
               for p in s.get("properties", {}).values() if p.get("type") == "array" and "maxItems" in p)
for p in bounded["properties"].values():
    p.pop("maxItems", None)
doc["components"]["securitySchemes"]["plantedKey"] = {"type": "apiKey", "in": "query", "name": "key"}
json.dump(doc, open(sys.argv[2], "w"))
PY
npx --no-install spectral lint --ruleset .spectral.yaml -f json -o "$scratch/planted-result.json" "$scratch/planted.json" >/dev/null 2>&1 || true
planted=$(python3 -c 'import json,sys; print(" ".join(sorted(p["code"] for p in json.load(open(sys.argv[1])) if p["severity"] == 0)))' "$scratch/planted-result.json")
[[ $planted == "tasklight:array-limit tasklight:no-api-keys-in-url tasklight:rate-limit-headers tasklight:read-restricted tasklight:write-restricted" ]] ||
    die "the replacement rules did not catch the planted gaps (got: ${planted:-nothing})"
say "OK: 0 errors from Redocly and Spectral; the replacement rules catch planted gaps"
