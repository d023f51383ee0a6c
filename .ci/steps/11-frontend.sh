# shellcheck shell=bash
# frontend: Swagger UI in chromium, generated TypeScript client
ensure_base_tools
ensure_release_binary
need chromium chromium
need npm npm
BIN="$BIN" tests/browser/run.sh || die "Swagger UI did not work in the browser (above)"
BIN="$BIN" tests/client-ts/run.sh ||
    die "the TypeScript client generated from the OpenAPI document failed to compile or to run (above)"
