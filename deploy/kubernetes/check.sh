#!/usr/bin/env bash
# Checks the Kubernetes manifests offline (no cluster needed), as CI's step 9 does:
#   1. sync-rules.py --check: the ServiceMonitor and PrometheusRules match observability/prometheus
#   2. kubectl kustomize renders each overlay (dev, production) and the request-rate HPA variant
#      (production + variants/hpa-request-rate) into a scratch directory
#   3. kubernetes-validate --strict against the Kubernetes $K8S_VERSION API schemas, on every
#      rendered resource but the Prometheus Operator's (its CRDs are not among those schemas);
#      those are checked by check-manifests.py crs instead (apiVersion, kind, required and allowed
#      fields, the ServiceMonitor's Service and port)
#   4. against the service (check-manifests.py service): every environment variable the manifests
#      set (env, ConfigMaps, the keys of overlays/*/<secret>.env.example) is one it reads
#      (src/config/*.rs or README.md's configuration table); probes on the admin port, on routes
#      of the admin listener; ports as TASKLIGHT_LISTEN and TASKLIGHT_ADMIN_LISTEN say; the grace
#      period longer than the drain delay plus the shutdown timeout; the image tag
#   5. the prometheus-adapter rule of the variant against the HPA and the service's metric
#   6. checkov, once per framework: kubernetes on the rendered manifests, dockerfile on the
#      Dockerfile, secrets on deploy/, docker-compose.yml, the Dockerfile and the rendered
#      manifests; 0 failed, and every skip carries its reason and is in README.md's table
#
# Usage: deploy/kubernetes/check.sh   (from any directory)
# Needs kubectl, kubernetes-validate and checkov (PyPI), python3 with PyYAML; promtool if present.
# Installs nothing. Exits non-zero on any failure.
set -euo pipefail

K8S_VERSION=1.31.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
check=("python3" "$here/check-manifests.py")

fail() {
    echo "check.sh: FAILED: $*" >&2
    exit 1
}

for tool in kubectl kubernetes-validate checkov python3; do
    command -v "$tool" >/dev/null || fail "$tool is not on the PATH (kubectl: Debian package kubectl; kubernetes-validate and checkov: pip install kubernetes-validate checkov)"
done
python3 -c 'import yaml' 2>/dev/null || fail "python3 has no PyYAML (Debian package python3-yaml)"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/tasklight-k8s.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/rendered" "$scratch/split" "$scratch/reports" "$scratch/variant"

echo "== sync-rules.py --check (components/monitoring from observability/prometheus)"
python3 "$here/sync-rules.py" --check || fail "the generated monitoring resources are out of date (diff above)"

# The variant: the production overlay with the request-rate component, as an operator would add it.
cat >"$scratch/variant/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$scratch/variant" "$here/overlays/production")
components:
  - $(realpath --relative-to="$scratch/variant" "$here/variants/hpa-request-rate")
EOF

# name, kustomization directory, directory of its Secrets' .env.example files
targets=(
    "dev $here/overlays/dev $here/overlays/dev"
    "production $here/overlays/production $here/overlays/production"
    "production-hpa-request-rate $scratch/variant $here/overlays/production"
)
summary=()
core_total=0
cr_total=0
for target in "${targets[@]}"; do
    read -r name dir secrets <<<"$target"
    out="$scratch/rendered/$name.yaml"
    echo "== kubectl kustomize ${dir#"$here"/} ($name)"
    kubectl kustomize "$dir" >"$out" || fail "kubectl kustomize failed for $name"
    "${check[@]}" split "$out" "$scratch/split/$name-core.yaml" "$scratch/split/$name-crs.yaml" ||
        fail "could not read the render of $name"
    core=$(grep -c '^kind:' "$scratch/split/$name-core.yaml" || true)
    crs=$(grep -c '^kind:' "$scratch/split/$name-crs.yaml" || true)
    core_total=$((core_total + core))
    cr_total=$((cr_total + crs))
    summary+=("$name: $((core + crs)) resources ($core core, $crs custom)")

    echo "== kubernetes-validate --strict -k $K8S_VERSION ($name: $core core resources)"
    kubernetes-validate --strict -k "$K8S_VERSION" --quiet "$scratch/split/$name-core.yaml" ||
        fail "$name does not validate against the Kubernetes $K8S_VERSION schemas"
    echo "$core resources valid"

    if ((crs > 0)); then
        echo "== custom resources ($name: $crs, shapes checked here, not by kubernetes-validate)"
        "${check[@]}" crs "$out" || fail "a custom resource of $name is malformed (above)"
    fi

    echo "== environment, probes, ports, grace period, image ($name)"
    "${check[@]}" service "$out" "$secrets" || fail "$name does not match the service (above)"
done

echo "== prometheus-adapter rule of the request-rate variant"
"${check[@]}" adapter "$here/variants/hpa-request-rate/prometheus-adapter-values.yaml" \
    "$scratch/rendered/production-hpa-request-rate.yaml" || fail "the adapter rule does not fit (above)"

# checkov: offline (--skip-download), from the scratch directory so that no stray .checkov.yaml
# applies; its exit code is ignored here, the JSON report decides.
run_checkov() {
    local framework=$1
    shift
    echo "== checkov --framework $framework $*"
    (cd "$scratch" && checkov --framework "$framework" --skip-download -o json "$@") \
        >"$scratch/reports/$framework.json" 2>"$scratch/reports/$framework.err" || true
    [[ -s $scratch/reports/$framework.json ]] || {
        tail -n 20 "$scratch/reports/$framework.err" >&2
        fail "checkov --framework $framework produced no JSON report (its errors above)"
    }
}
run_checkov kubernetes -d "$scratch/rendered"
run_checkov dockerfile -f "$repo/Dockerfile"
# One directory for the secrets scan (given -d and -f together, checkov scans the files twice).
mkdir -p "$scratch/secrets-scan"
cp -R "$repo/deploy" "$scratch/rendered" "$repo/docker-compose.yml" "$repo/Dockerfile" "$scratch/secrets-scan/"
echo "(secrets scan: $(find "$scratch/secrets-scan" -type f | wc -l) files: deploy/, the renders, docker-compose.yml, Dockerfile)"
run_checkov secrets -d "$scratch/secrets-scan"
echo "== checkov results"
"${check[@]}" checkov "$here/README.md" "$scratch"/reports/{kubernetes,dockerfile,secrets}.json ||
    fail "checkov found problems, or a skip without a reason or outside README.md's table (above)"

echo
printf '  %s\n' "${summary[@]}"
echo "check.sh: ok: ${#targets[@]} renders, $core_total resources valid against Kubernetes $K8S_VERSION, $cr_total custom resources shape-checked"
