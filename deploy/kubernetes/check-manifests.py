#!/usr/bin/env python3
"""The checks of deploy/kubernetes/check.sh that read rendered manifests (run by it; each prints
what it checked and exits 1 with the problems found):

  split RENDERED CORE CRS        splits a render into the resources the Kubernetes API schemas
                                 cover (CORE) and the Prometheus Operator's (CRS)
  crs RENDERED                   ServiceMonitor and PrometheusRule shape: apiVersion, kind, the
                                 fields the CRDs require and allow; the ServiceMonitor selects
                                 the Service and names one of its ports
  service RENDERED SECRETS_DIR   against the service's code and README: every environment variable
                                 set (env, ConfigMaps, and the keys of Secrets, from
                                 SECRETS_DIR/<secret>.env.example) is one the service reads; probe
                                 ports and paths; listen addresses; Service, NetworkPolicy,
                                 ServiceMonitor and Ingress ports; the grace period against the
                                 drain delay and shutdown timeout; the image tag
  adapter VALUES RENDERED        the prometheus-adapter rule against the service's metric and the
                                 HPA's custom metric; its query through promtool if present
  checkov README REPORT...       checkov's JSON reports: counts, 0 failed, every skip with a
                                 reason, and the skips exactly those of README.md's table

Needs python3 with PyYAML. Paths in the repository are found from this file's place.
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CR_GROUP = "monitoring.coreos.com/"
ADMIN_ROUTES_FN = "pub fn admin_routes"
# Named ports: the container, the Service and the probes use these names; the numbers are the
# ports of the listen addresses the manifests set.
PORTS = {"http": "TASKLIGHT_LISTEN", "admin": "TASKLIGHT_ADMIN_LISTEN"}
PROBES = {"readinessProbe": "/health/ready", "livenessProbe": "/health/live", "startupProbe": None}
DURATION = re.compile(r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$")

problems = []


def problem(message):
    problems.append(message)


def finish(what):
    if problems:
        for message in problems:
            print(f"  FAIL: {message}", file=sys.stderr)
        sys.exit(f"check-manifests {what}: {len(problems)} problem(s)")


def load(path):
    return [doc for doc in yaml.safe_load_all(pathlib.Path(path).read_text()) if doc]


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def is_cr(doc):
    return str(doc.get("apiVersion", "")).startswith(CR_GROUP)


# --------------------------------------------------------------------------------------------------
# split


def cmd_split(rendered, core_path, crs_path):
    docs = load(rendered)
    core = [doc for doc in docs if not is_cr(doc)]
    crs = [doc for doc in docs if is_cr(doc)]
    pathlib.Path(core_path).write_text(yaml.safe_dump_all(core, sort_keys=False))
    pathlib.Path(crs_path).write_text(yaml.safe_dump_all(crs, sort_keys=False))
    kinds = {}
    for doc in docs:
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    listing = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    print(f"{len(docs)} resources ({len(core)} core, {len(crs)} custom): {listing}")


# --------------------------------------------------------------------------------------------------
# crs

SERVICE_MONITOR_SPEC = {
    "selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels",
    "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
    "attachMetadata", "scrapeClass", "scrapeProtocols", "keepDroppedTargets", "bodySizeLimit",
    "fallbackScrapeProtocol", "selectorMechanism", "nativeHistogramBucketLimit",
    "nativeHistogramMinBucketFactor", "scrapeClassicHistograms", "convertClassicHistogramsToNHCB",
}
ENDPOINT = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels",
    "honorTimestamps", "trackTimestampsStaleness", "relabelings", "metricRelabelings",
    "followRedirects", "enableHttp2", "filterRunning", "tlsConfig", "authorization", "basicAuth",
    "oauth2", "bearerTokenSecret", "proxyUrl", "noProxy", "proxyFromEnvironment",
    "proxyConnectHeader",
}
RELABEL = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}
RELABEL_ACTIONS = {
    "replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap", "labeldrop",
    "labelkeep", "lowercase", "uppercase",
}
RULE_GROUP = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"}
RULE = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def check_metadata(doc, where):
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        problem(f"{where}: apiVersion {doc.get('apiVersion')!r}, expected monitoring.coreos.com/v1")
    meta = doc.get("metadata") or {}
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        problem(f"{where}: no metadata.name")
    if not meta.get("namespace"):
        problem(f"{where}: no metadata.namespace (the overlay sets it)")
    if not isinstance(doc.get("spec"), dict):
        problem(f"{where}: no spec")
        return False
    return True


def string_map(value, where):
    if value is None:
        return
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        problem(f"{where}: must map strings to strings")


def check_prometheus_rule(doc):
    where = name_of(doc)
    if not check_metadata(doc, where):
        return 0
    spec = doc["spec"]
    extra = set(spec) - {"groups"}
    if extra:
        problem(f"{where}: unknown spec fields {sorted(extra)}")
    groups = spec.get("groups")
    if not isinstance(groups, list) or not groups:
        problem(f"{where}: spec.groups must be a non-empty list")
        return 0
    count = 0
    seen = set()
    for group in groups:
        gname = group.get("name") if isinstance(group, dict) else None
        gwhere = f"{where} group {gname}"
        if not isinstance(gname, str) or not gname:
            problem(f"{where}: a group without a name")
            continue
        if gname in seen:
            problem(f"{gwhere}: name used twice")
        seen.add(gname)
        if set(group) - RULE_GROUP:
            problem(f"{gwhere}: unknown fields {sorted(set(group) - RULE_GROUP)}")
        if "interval" in group and not DURATION.match(str(group["interval"])):
            problem(f"{gwhere}: interval {group['interval']!r} is not a duration")
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problem(f"{gwhere}: rules must be a non-empty list")
            continue
        for index, rule in enumerate(rules):
            rwhere = f"{gwhere} rule {index + 1}"
            if not isinstance(rule, dict):
                problem(f"{rwhere}: not a mapping")
                continue
            count += 1
            if set(rule) - RULE:
                problem(f"{rwhere}: unknown fields {sorted(set(rule) - RULE)}")
            if ("record" in rule) == ("alert" in rule):
                problem(f"{rwhere}: needs exactly one of record and alert")
            if not isinstance(rule.get("expr"), (str, int)) or str(rule.get("expr")).strip() == "":
                problem(f"{rwhere}: no expr")
            for key in ("for", "keep_firing_for"):
                if key in rule and not DURATION.match(str(rule[key])):
                    problem(f"{rwhere}: {key} {rule[key]!r} is not a duration")
            if "record" in rule and ({"for", "keep_firing_for", "annotations"} & set(rule)):
                problem(f"{rwhere}: a recording rule takes no for, keep_firing_for or annotations")
            string_map(rule.get("labels"), f"{rwhere} labels")
            string_map(rule.get("annotations"), f"{rwhere} annotations")
    return count


def check_service_monitor(doc, services):
    where = name_of(doc)
    if not check_metadata(doc, where):
        return
    spec = doc["spec"]
    if set(spec) - SERVICE_MONITOR_SPEC:
        problem(f"{where}: unknown spec fields {sorted(set(spec) - SERVICE_MONITOR_SPEC)}")
    match = (spec.get("selector") or {}).get("matchLabels")
    if not isinstance(match, dict) or not match:
        problem(f"{where}: spec.selector.matchLabels is required here")
        return
    namespace = doc["metadata"].get("namespace")
    selected = [
        svc for svc in services
        if svc["metadata"].get("namespace") == namespace
        and match.items() <= (svc["metadata"].get("labels") or {}).items()
    ]
    if len(selected) != 1:
        problem(f"{where}: selects {len(selected)} Services in namespace {namespace}, expected 1")
        return
    port_names = {port.get("name") for port in selected[0]["spec"].get("ports", [])}
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problem(f"{where}: spec.endpoints must be a non-empty list")
        return
    for endpoint in endpoints:
        if set(endpoint) - ENDPOINT:
            problem(f"{where}: unknown endpoint fields {sorted(set(endpoint) - ENDPOINT)}")
        if endpoint.get("port") not in port_names:
            problem(f"{where}: endpoint port {endpoint.get('port')!r} is not a port of {name_of(selected[0])} {sorted(port_names)}")
        if not str(endpoint.get("path", "/metrics")).startswith("/"):
            problem(f"{where}: endpoint path {endpoint.get('path')!r}")
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint and not DURATION.match(str(endpoint[key])):
                problem(f"{where}: {key} {endpoint[key]!r} is not a duration")
        for relabel in endpoint.get("relabelings", []) + endpoint.get("metricRelabelings", []):
            if set(relabel) - RELABEL:
                problem(f"{where}: unknown relabeling fields {sorted(set(relabel) - RELABEL)}")
            if relabel.get("action", "replace").lower() not in RELABEL_ACTIONS:
                problem(f"{where}: relabeling action {relabel.get('action')!r}")
            if relabel.get("action", "replace").lower() == "replace" and "targetLabel" not in relabel:
                problem(f"{where}: a replace relabeling without targetLabel")
    print(f"  {where}: selects {name_of(selected[0])}, {len(endpoints)} endpoint(s) on port(s) "
          + ", ".join(str(e.get("port")) for e in endpoints))


def cmd_crs(rendered):
    docs = load(rendered)
    services = [doc for doc in docs if doc.get("kind") == "Service"]
    crs = [doc for doc in docs if is_cr(doc)]
    rules = 0
    for doc in crs:
        kind = doc.get("kind")
        if kind == "PrometheusRule":
            count = check_prometheus_rule(doc)
            rules += count
            print(f"  {name_of(doc)}: {len(doc.get('spec', {}).get('groups') or [])} groups, {count} rules")
        elif kind == "ServiceMonitor":
            check_service_monitor(doc, services)
        else:
            problem(f"{name_of(doc)}: a custom resource this check does not know")
    finish("crs")
    print(f"custom resources: {len(crs)} checked ({rules} rules), shapes ok")


# --------------------------------------------------------------------------------------------------
# service


def known_variables():
    """Variables the service reads: string literals of src/config/*.rs, and the names in the first
    column of README.md's configuration table."""
    from_code = set()
    for path in sorted((REPO / "src" / "config").glob("*.rs")):
        from_code |= set(re.findall(r'"([A-Z][A-Z0-9_]*)"', path.read_text()))
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Configuration\n(.*?)(?=^## )", readme, re.S | re.M)
    from_readme = set()
    if section:
        for line in section.group(1).splitlines():
            if line.startswith("|"):
                first = line.split("|")[1]
                from_readme |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    if not from_code or not from_readme:
        problem("found no variable names in src/config/*.rs or README.md's configuration table")
    return from_code, from_readme


def code_default(variable):
    """The default of a numeric setting in src/config/mod.rs: `"NAME", 5_000` in its reader call."""
    text = (REPO / "src" / "config" / "mod.rs").read_text()
    found = re.findall(r'"' + variable + r'",\s*([0-9_]+)\s*[,)]', text)
    if len(set(found)) != 1:
        problem(f"cannot find the default of {variable} in src/config/mod.rs (found {found})")
        return None
    return int(found[0].replace("_", ""))


def admin_routes():
    text = (REPO / "src" / "router.rs").read_text()
    start = text.find(ADMIN_ROUTES_FN)
    if start < 0:
        problem(f"no `{ADMIN_ROUTES_FN}` in src/router.rs")
        return set()
    end = text.find("\n}\n", start)
    return set(re.findall(r'\.at\(\s*"([^"]+)"', text[start:end]))


def crate_version():
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    return match.group(1) if match else None


def listen_port(value, variable, where):
    match = re.fullmatch(r"(\[[0-9a-fA-F:]*\]|[^:]+):([0-9]+)", value or "")
    if not match:
        problem(f"{where}: {variable}={value!r} is not HOST:PORT")
        return None
    host = match.group(1)
    if host not in ("0.0.0.0", "[::]"):
        problem(f"{where}: {variable}={value} listens on {host} only: the kubelet and the Service cannot reach it")
    return int(match.group(2))


def environment(container, by_name, secrets_dir, where, origins):
    """The container's variables: name -> value (None when it is not in the manifests: a Secret's,
    or valueFrom). Records where each came from in origins."""
    env = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            config_map = by_name.get(("ConfigMap", ref))
            if config_map is None:
                if not source["configMapRef"].get("optional"):
                    problem(f"{where}: envFrom ConfigMap {ref} is not in the render")
                continue
            for key, value in (config_map.get("data") or {}).items():
                env[prefix + key] = value
                origins.setdefault(prefix + key, set()).add(f"ConfigMap {ref}")
        elif "secretRef" in source:
            ref = source["secretRef"]["name"]
            secret = by_name.get(("Secret", ref))
            if secret is not None:
                keys = list((secret.get("data") or {})) + list((secret.get("stringData") or {}))
            else:
                example = pathlib.Path(secrets_dir) / f"{ref}.env.example"
                if not example.exists():
                    problem(f"{where}: envFrom Secret {ref} is neither rendered nor listed in {example.relative_to(REPO)}")
                    continue
                keys = [
                    line.split("=", 1)[0].strip()
                    for line in example.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")
                ]
            for key in keys:
                env[prefix + key] = None
                origins.setdefault(prefix + key, set()).add(f"Secret {ref}")
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
        origins.setdefault(item["name"], set()).add(f"env of {container['name']}")
    return env


def cmd_service(rendered, secrets_dir):
    docs = load(rendered)
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    from_code, from_readme = known_variables()
    routes = admin_routes()
    version = crate_version()
    origins = {}
    checked_probes = 0
    workloads = [doc for doc in docs if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job")]
    if not workloads:
        problem("no workload in the render")
    container_ports = {}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        containers = pod.get("initContainers", []) + pod.get("containers", [])
        serving_env = {}
        for container in containers:
            where = f"{name_of(workload)} container {container['name']}"
            env = environment(container, by_name, secrets_dir, where, origins)
            image = container.get("image", "")
            if "@sha256:" not in image and image.rpartition(":")[2] != version:
                problem(f"{where}: image {image} is neither the crate's version {version} nor a digest")
            if container in pod.get("initContainers", []):
                continue
            serving_env = env
            ports = {port.get("name"): port.get("containerPort") for port in container.get("ports", [])}
            container_ports.update(ports)
            for name, variable in PORTS.items():
                if variable not in env:
                    problem(f"{where}: {variable} is not set (the service's default may not be reachable)")
                    continue
                port = listen_port(env[variable], variable, where)
                if ports.get(name) != port:
                    problem(f"{where}: port {name} is {ports.get(name)}, {variable} says {port}")
            for probe_key, wanted_path in PROBES.items():
                probe = container.get(probe_key)
                if probe is None:
                    problem(f"{where}: no {probe_key}")
                    continue
                get = probe.get("httpGet") or {}
                checked_probes += 1
                if get.get("port") != "admin":
                    problem(f"{where}: {probe_key} on port {get.get('port')!r}, expected the named port admin")
                if get.get("path") not in routes:
                    problem(f"{where}: {probe_key} path {get.get('path')!r} is not a route of the admin listener {sorted(routes)}")
                if wanted_path and get.get("path") != wanted_path:
                    problem(f"{where}: {probe_key} path {get.get('path')!r}, expected {wanted_path}")
            annotations = workload["spec"]["template"]["metadata"].get("annotations") or {}
            if "prometheus.io/port" in annotations and str(ports.get("admin")) != annotations["prometheus.io/port"]:
                problem(f"{where}: annotation prometheus.io/port {annotations['prometheus.io/port']} is not the admin port {ports.get('admin')}")
        # The grace period against the drain delay and the shutdown timeout.
        grace = pod.get("terminationGracePeriodSeconds", 30)
        total = 0
        parts = []
        for variable in ("TASKLIGHT_DRAIN_DELAY_MS", "TASKLIGHT_SHUTDOWN_TIMEOUT_MS"):
            value = serving_env.get(variable)
            source = "manifest"
            if value is None:
                value, source = code_default(variable), "service default"
            if value is None:
                continue
            total += int(value)
            parts.append(f"{variable}={value} ({source})")
        if not grace > total / 1000:
            problem(f"{name_of(workload)}: terminationGracePeriodSeconds {grace} is not longer than {total / 1000:g} s ({', '.join(parts)})")
        relation = ">" if grace > total / 1000 else "NOT >"
        print(f"  grace period: {name_of(workload)} {grace} s {relation} {total / 1000:g} s = {' + '.join(parts)}")

    # The ports around the pods.
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Service":
            for port in doc["spec"].get("ports", []):
                name = port.get("name")
                if name not in PORTS or port.get("targetPort") != name or port.get("port") != container_ports.get(name):
                    problem(f"{name_of(doc)}: port {port}, expected name and targetPort {sorted(PORTS)} and the container's number")
        elif kind == "NetworkPolicy":
            for rule in doc["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    if port.get("port") not in container_ports.values() and port.get("port") not in container_ports:
                        problem(f"{name_of(doc)}: port {port.get('port')} is none of the container's {container_ports}")
        elif kind == "Ingress":
            for rule in doc["spec"].get("rules", []):
                for path in rule.get("http", {}).get("paths", []):
                    port = path["backend"]["service"]["port"]
                    if port.get("name") != "http" and port.get("number") != container_ports.get("http"):
                        problem(f"{name_of(doc)}: backend port {port}, expected http")

    unknown = sorted(name for name in origins if name not in from_code and name not in from_readme)
    for name in unknown:
        problem(f"{name} (set by {', '.join(sorted(origins[name]))}) is read by the service nowhere: "
                "not a string literal of src/config/*.rs nor a name in README.md's configuration table")
    print(f"  environment: {len(origins)} variables checked, {len(origins) - len(unknown)} read by the service: "
          + ", ".join(sorted(origins)))
    print(f"  probes: {checked_probes} checked against the admin listener's routes {sorted(routes)}")
    finish("service")
    print(f"service checks ok: {len(origins)} variables, {checked_probes} probes, ports {container_ports}")


# --------------------------------------------------------------------------------------------------
# adapter


def cmd_adapter(values_path, rendered):
    values = yaml.safe_load(pathlib.Path(values_path).read_text())
    rules = (values.get("rules") or {}).get("custom") or []
    hpa_metrics = set()
    for doc in load(rendered):
        if doc.get("kind") == "HorizontalPodAutoscaler":
            for metric in doc["spec"].get("metrics", []):
                if metric.get("type") == "Pods":
                    hpa_metrics.add(metric["pods"]["metric"]["name"])
    if not hpa_metrics:
        problem("the variant's render has no HPA on a Pods metric")
    served = set()
    metrics_source = (REPO / "src" / "telemetry" / "metrics.rs").read_text()
    for rule in rules:
        series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule.get("seriesQuery", ""))
        name = (rule.get("name") or {}).get("as")
        served.add(name)
        if not series:
            problem(f"adapter rule {name}: no metric in seriesQuery")
            continue
        base = re.sub(r"_(count|sum|bucket|total)$", "", series.group(1))
        if f'"{base}"' not in metrics_source:
            problem(f"adapter rule {name}: {series.group(1)} is not a metric of src/telemetry/metrics.rs")
        overrides = (rule.get("resources") or {}).get("overrides") or {}
        if {v.get("resource") for v in overrides.values()} != {"namespace", "pod"}:
            problem(f"adapter rule {name}: resources must map the namespace and pod labels")
        query = rule.get("metricsQuery", "")
        for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
            if placeholder not in query:
                problem(f"adapter rule {name}: metricsQuery has no {placeholder}")
        promtool = shutil.which("promtool")
        if promtool:
            expr = (query.replace("<<.Series>>", series.group(1))
                    .replace("<<.LabelMatchers>>", 'namespace="tasklight",pod=~"tasklight-.*"')
                    .replace("<<.GroupBy>>", "pod"))
            with tempfile.NamedTemporaryFile("w", suffix=".yml") as rules_file:
                yaml.safe_dump({"groups": [{"name": "adapter", "rules": [{"record": "adapter:check", "expr": expr}]}]}, rules_file)
                rules_file.flush()
                result = subprocess.run([promtool, "check", "rules", rules_file.name], capture_output=True, text=True)
            if result.returncode != 0:
                problem(f"adapter rule {name}: promtool rejects {expr}: {result.stdout}{result.stderr}")
            else:
                print(f"  adapter rule {name}: promtool accepts {expr}")
        else:
            print(f"  adapter rule {name}: query not checked (no promtool on PATH)")
    missing = hpa_metrics - served
    if missing:
        problem(f"the HPA asks for {sorted(missing)}, which no adapter rule serves ({sorted(served)})")
    finish("adapter")
    print(f"adapter: {len(rules)} rule(s), serving {sorted(served)}; the HPA uses {sorted(hpa_metrics)}")


# --------------------------------------------------------------------------------------------------
# checkov


def readme_skips(readme):
    text = pathlib.Path(readme).read_text()
    return set(re.findall(r"^\|\s*`?(CKV2?_[A-Z0-9_]+)`?\s*\|", text, re.M))


def checkov_runs(report):
    """The runs of a checkov JSON report: one object, a list of them, or (with both -d and -f)
    several JSON documents one after the other."""
    text = pathlib.Path(report).read_text()
    decoder = json.JSONDecoder()
    runs = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            sys.exit(f"check-manifests checkov: {report} is not checkov's JSON: {error}")
        runs.extend(value if isinstance(value, list) else [value])
    if not runs:
        sys.exit(f"check-manifests checkov: {report} is empty")
    return runs


def cmd_checkov(readme, reports):
    documented = readme_skips(readme)
    skipped_ids = set()
    for report in reports:
        for run in checkov_runs(report):
            framework = run.get("check_type", pathlib.Path(report).stem)
            summary = run.get("summary", run)
            results = run.get("results", {})
            failed = results.get("failed_checks", [])
            skipped = results.get("skipped_checks", [])
            print(f"  checkov {framework}: passed {summary.get('passed', 0)}, failed {summary.get('failed', 0)}, "
                  f"skipped {summary.get('skipped', 0)}, resources {summary.get('resource_count', 0)}, "
                  f"parsing errors {summary.get('parsing_errors', 0)}")
            if summary.get("parsing_errors", 0):
                problem(f"checkov {framework}: {summary['parsing_errors']} parsing error(s)")
            if summary.get("failed", 0) or failed:
                problem(f"checkov {framework}: {summary.get('failed', len(failed))} failed check(s)")
            for check in failed:
                print(f"    FAILED {check['check_id']} {check['check_name']}: {check['resource']} "
                      f"({check.get('file_path')}:{check.get('file_line_range')})")
            by_reason = {}
            for check in skipped:
                reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
                skipped_ids.add(check["check_id"])
                where = f"{check['resource']} in {check.get('file_path', '?').lstrip('/')}"
                by_reason.setdefault((check["check_id"], reason), []).append(where)
                if not reason or reason == "No comment provided":
                    problem(f"checkov {framework}: {check['check_id']} on {where} skipped without a reason")
            for (check_id, reason), places in sorted(by_reason.items()):
                print(f"    skipped {check_id} ({len(places)}x: {', '.join(places)}): {reason}")
    if skipped_ids - documented:
        problem(f"skipped but not in README.md's skip table: {sorted(skipped_ids - documented)}")
    if documented - skipped_ids:
        problem(f"in README.md's skip table but skipped nowhere (remove them): {sorted(documented - skipped_ids)}")
    finish("checkov")
    print(f"checkov: 0 failed; skipped {sorted(skipped_ids) or 'none'}, each with its reason and in README.md")


def main(argv):
    commands = {
        "split": (cmd_split, 3), "crs": (cmd_crs, 1), "service": (cmd_service, 2),
        "adapter": (cmd_adapter, 2),
    }
    if len(argv) >= 3 and argv[1] == "checkov":
        cmd_checkov(argv[2], argv[3:])
        return
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        sys.exit(__doc__)
    commands[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
