# shellcheck shell=bash
# drain under load: nginx over 3 instances, SIGTERM and restart two of them
# loadtests/drain/run.sh: k6 sends 200 requests/s (70% reads, 30% writes) through nginx while
# instances A and B are stopped with SIGTERM and started again; it fails on any failed request, any
# acknowledged write missing from PostgreSQL, any acknowledged write whose webhook event never
# reached the receiver (across the drains, and a SIGKILL of the instance holding the delivery
# lease after the load), or a drain that did not exit 0 in time.
ensure_base_tools
ensure_release_binary
need nginx nginx
ensure_venv k6
PATH="$VENV/bin:$PATH" BIN="$BIN" loadtests/drain/run.sh ||
    die "drain under load failed: a request failed, a write went missing or a drain misbehaved (report above)"
