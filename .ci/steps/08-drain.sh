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
# A schema change without downtime (issue 16, item 3): loadtests/side-by-side/run.sh builds the next
# release (HEAD plus two expand migrations, linted, renamed tasklight-next so that only its own
# crate compiles in the shared target directory), runs it beside this release on one PostgreSQL database behind
# nginx under the k6 mix, restarts one old instance on the expanded schema and stops the old ones;
# it fails on any failed request, any acknowledged write missing, or a migration not applied.
need rsync rsync
PATH="$VENV/bin:$PATH" BIN="$BIN" loadtests/side-by-side/run.sh ||
    die "side by side failed: a request failed, a write went missing, or a release or the expand migration misbehaved (report above)"
