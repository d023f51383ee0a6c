"""The dashboards' JSON: variables and their values, every expression with its datasource,
structural checks and data links."""

import glob
import json
import os
import re


# Grafana's built-in variables, replaced as Grafana would for a 5-minute range and 15 s steps.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
    "__auto": "1m",
}


PROM_UIDS = {"prometheus"}
LOKI_UIDS = {"loki"}
KNOWN_UIDS = {"prometheus", "loki", "jaeger", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}


VAR_RE = re.compile(r"\$\{([A-Za-z0-9_.]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]")


def ds_uid(ds):
    if isinstance(ds, dict):
        return ds.get("uid")
    if isinstance(ds, str):
        return ds
    return None


def variable_values(dashboard):
    """The value each variable takes in the check: "All" for the filter variables."""
    values, multi = {}, set()
    for v in dashboard.get("templating", {}).get("list", []):
        name = v["name"]
        if v.get("multi") or v.get("includeAll"):
            multi.add(name)
        if v.get("includeAll"):
            values[name] = v.get("allValue") or ".*"
        elif v.get("type") in ("textbox", "constant"):
            cur = (v.get("current") or {}).get("value")
            values[name] = cur if isinstance(cur, str) else v.get("query", "")
        else:
            cur = (v.get("current") or {}).get("value")
            if isinstance(cur, list):
                cur = cur[0] if cur else ""
            values[name] = cur if cur is not None else ""
    return values, multi


def substitute(expr, values):
    missing = []

    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        if name in BUILTINS:
            return BUILTINS[name]
        missing.append(name)
        return m.group(0)

    out = VAR_RE.sub(repl, expr)
    return out, missing


def collect(dashboards_dir):
    """Yields (kind, source, raw expression, dashboard) for every expression of the dashboards.
    kind: promql, prom-var, logql, loki-var."""
    items = []
    for path in sorted(glob.glob(os.path.join(dashboards_dir, "*.json"))):
        fname = os.path.basename(path)
        with open(path) as f:
            dash = json.load(f)
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            uid = ds_uid(v.get("datasource"))
            q = v.get("query")
            if isinstance(q, dict):
                q = q.get("query") or q
            src = f"{fname} | variable {v['name']}"
            if uid in PROM_UIDS:
                items.append(("prom-var", src, q, dash))
            elif uid in LOKI_UIDS:
                items.append(("loki-var", src, q, dash))
            else:
                items.append(("error", src, f"variable datasource {uid!r} is neither prometheus nor loki", dash))

        def walk(panels):
            for p in panels:
                if p.get("type") == "row":
                    walk(p.get("panels", []))
                    continue
                puid = ds_uid(p.get("datasource"))
                for t in p.get("targets", []):
                    uid = ds_uid(t.get("datasource")) or puid
                    src = f"{fname} | #{p.get('id')} {p.get('title')} | {t.get('refId')}"
                    if uid in PROM_UIDS:
                        items.append(("promql", src, t.get("expr", ""), dash))
                    elif uid in LOKI_UIDS:
                        items.append(("logql", src, t.get("expr", ""), dash))
                    else:
                        items.append(("error", src, f"target datasource {uid!r} is neither prometheus nor loki", dash))
        walk(dash.get("panels", []))
    return items


def structural_checks(dashboards_dir):
    """Cheap checks of the JSON itself; returns a list of problems."""
    problems = []
    required = {"service-overview.json", "dependencies.json", "slo.json", "logs-and-traces.json", "events.json"}
    present = {os.path.basename(p) for p in glob.glob(os.path.join(dashboards_dir, "*.json"))}
    for missing in sorted(required - present):
        problems.append(f"{missing}: missing")
    uids = {}
    for path in sorted(glob.glob(os.path.join(dashboards_dir, "*.json"))):
        fname = os.path.basename(path)
        with open(path) as f:
            dash = json.load(f)
        if dash.get("uid") in uids:
            problems.append(f"{fname}: uid {dash.get('uid')} also used by {uids[dash['uid']]}")
        uids[dash.get("uid")] = fname
        if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
            problems.append(f"{fname}: schemaVersion {dash.get('schemaVersion')!r}")
        variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
        inst = "instance_id" if fname == "logs-and-traces.json" else "instance"
        for name in (inst, "route"):
            v = variables.get(name)
            if not v:
                problems.append(f"{fname}: no `{name}` variable")
            elif not (v.get("multi") and v.get("includeAll")):
                problems.append(f"{fname}: variable `{name}` is not multi-value with All")
        ids = []
        text = json.dumps(dash)

        def walk(panels):
            for p in panels:
                ids.append(p.get("id"))
                if "gridPos" not in p:
                    problems.append(f"{fname}: panel {p.get('title')!r} has no gridPos")
                for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
                    uid = ds_uid(ds)
                    if uid is not None and uid not in KNOWN_UIDS:
                        problems.append(f"{fname}: panel {p.get('title')!r} uses datasource uid {uid!r}")
                if p.get("type") != "row" and not p.get("targets"):
                    problems.append(f"{fname}: panel {p.get('title')!r} has no query")
                walk(p.get("panels", []))
        walk(dash.get("panels", []))
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            problems.append(f"{fname}: duplicate panel ids {sorted(dup)}")
        # Internal data links must point at the datasources that exist.
        for m in re.finditer(r'"datasourceUid": "([^"]+)"', text):
            if m.group(1) not in KNOWN_UIDS:
                problems.append(f"{fname}: data link to datasource uid {m.group(1)!r}")
    return problems


# Grafana's `label_values(...)` and `query_result(...)` variable queries.
LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(?P<sel>.+?)\s*,\s*)?(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)
QUERY_RESULT_RE = re.compile(r"^\s*query_result\((?P<q>.*)\)\s*$", re.S)


def check_links(dashboards_dir, keys, report):
    """`${__data.fields.X}` in a Loki panel's links must name a field the lines carry."""
    n = 0
    for path in sorted(glob.glob(os.path.join(dashboards_dir, "*.json"))):
        with open(path) as f:
            dash = json.load(f)
        for p in dash.get("panels", []):
            text = json.dumps(p.get("fieldConfig", {}))
            for field in re.findall(r"\$\{__data\.fields\.([A-Za-z0-9_]+)", text):
                n += 1
                if ds_uid(p.get("datasource")) in LOKI_UIDS and field not in keys:
                    report.fail(f"{os.path.basename(path)} | {p.get('title')}", f"data link uses field {field}, which no log line has")
    return n
