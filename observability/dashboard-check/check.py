#!/usr/bin/env python3
"""Checks the Grafana dashboards (dashboards/*.json) and the Prometheus rules against real data.

Run by observability/check-dashboards.sh, which starts two tasklight instances and a Prometheus
scraping them, then calls this script with their addresses. This script:

  1. drives bounded traffic at both instances (register, login, projects, tasks, reads, updates,
     404s, 401s, login failures, 412s, and anonymous requests until they are rate-limited: 429),
  2. waits until Prometheus has scraped it,
  3. evaluates every PromQL expression of the dashboards (panel targets on the `prometheus`
     datasource and template-variable queries) and of the rule files Prometheus loaded (recording
     and alerting rules) through Prometheus's HTTP API: each must parse, and each must return data
     unless ALLOWED_EMPTY below says why it may not,
  4. checks every LogQL query of the dashboards (targets on the `loki` datasource and Loki
     variable queries) against the JSON log lines the two instances printed: stream selectors may
     only use the labels the log shipper sets, every field used after `| json` must be a key of
     the captured lines, and each query, run over the captured lines by a small LogQL subset
     evaluator, must match some line (unless allowed empty), once with every filter at "All" and
     once filtered on one real request (its instance, level, route, request_id and trace_id),
  5. prints every expression with its result count and a summary, and exits 1 on any failure.

Only the Python standard library is used. Only 127.0.0.1 is contacted.
"""

import argparse
import glob
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

# ---------------------------------------------------------------------------------------------
# What may be empty, and why. Everything not listed here must return data.

# PromQL expressions allowed to return no series (or only NaN) in this test, as
# (regex matched against the expression's source, reason). A source looks like
# "service-overview.json | #12 5xx ratio by route | A" or "rule recording.yml | <group> | <record name>".
ALLOWED_EMPTY_PROMQL = [
    # Every alerting rule: on a healthy system none may fire, so an empty result is the expected
    # one; they are still evaluated, so each must parse and evaluate without error. (Recording
    # rules are not listed: each must return data.)
    (r"^alert ", "an alert expression returns nothing while the system is healthy"),
]

# LogQL queries allowed to match no captured line, as (regex matched against the query's
# source, pass, reason); pass is "all" (every filter at All) or "one" (filtered on one request).
ALLOWED_EMPTY_LOGQL = [
    (r"\| #\d+ Slow requests from the access log \|", "all",
     "no request takes over 250 ms on an idle test machine"),
    (r"\| #\d+ Slow requests from the access log \|", "one",
     "no request takes over 250 ms on an idle test machine"),
]

# The labels the log shipper puts on Loki streams; everything else is a JSON field of the line.
STREAM_LABELS = {"service", "instance_id", "level"}
# Labels Loki adds itself.
LOKI_SPECIAL_LABELS = {"__error__", "__error_details__", "__line__", "__timestamp__"}

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

# ---------------------------------------------------------------------------------------------
# HTTP (no proxy: everything is on 127.0.0.1)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None, timeout=15):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def prom_get(prom, path, params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    status, _, body = http("GET", url, timeout=30)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"status": "error", "error": body[:200].decode(errors="replace")}
    return status, doc


def prom_query(prom, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    return prom_get(prom, "/api/v1/query", params)


# ---------------------------------------------------------------------------------------------
# Traffic


class Traffic:
    def __init__(self, apis):
        self.apis = apis
        self.statuses = {}
        self.requests = 0
        self.reuse_request_id = None

    def call(self, i, method, path, body=None, token=None, headers=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        status, resp_headers, raw = http(method, self.apis[i % len(self.apis)] + path, body, hdrs)
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return status, resp_headers, doc

    def expect(self, want, got, what):
        if got != want:
            raise SystemExit(f"traffic: {what}: expected {want}, got {got}")


def drive_traffic(apis, seconds):
    t = Traffic(apis)
    run = uuid.uuid4().hex[:10]
    password = "correct-horse-battery"
    users = []
    for n in range(4):
        email = f"dash-{run}-{n}@example.com"
        status, _, _ = t.call(n, "POST", "/api/v1/auth/register",
                              {"email": email, "password": password, "display_name": f"Dash {n}"})
        t.expect(201, status, f"register {email}")
        status, _, doc = t.call(n + 1, "POST", "/api/v1/auth/login", {"email": email, "password": password})
        t.expect(200, status, f"login {email}")
        users.append({"email": email, "token": doc["access_token"], "n": n})
    for n in range(3):  # login failures (401), counted by tasklight_auth_events_total
        status, _, _ = t.call(n, "POST", "/api/v1/auth/login", {"email": users[0]["email"], "password": "wrong-password-123"})
        t.expect(401, status, "login with a wrong password")
    for u in users:
        status, _, doc = t.call(u["n"], "POST", "/api/v1/projects", {"name": f"Dash project {u['n']}"}, u["token"])
        t.expect(201, status, "create project")
        u["project"] = doc["id"]
        u["tasks"] = []
        for k in range(3):
            status, hdrs, doc = t.call(u["n"] + 1, "POST", f"/api/v1/projects/{u['project']}/tasks",
                                       {"title": f"Task {k}", "priority": "high", "tags": ["dash"]}, u["token"])
            t.expect(201, status, "create task")
            u["tasks"].append({"id": doc["id"], "etag": hdrs.get("ETag") or hdrs.get("etag")})
    # A stale If-Match: 412.
    first = users[0]["tasks"][0]
    status, _, _ = t.call(0, "PATCH", f"/api/v1/tasks/{first['id']}", {"status": "in_progress"}, users[0]["token"],
                          {"If-Match": first["etag"]})
    t.expect(200, status, "update with the current ETag")
    status, _, _ = t.call(1, "PATCH", f"/api/v1/tasks/{first['id']}", {"status": "done"}, users[0]["token"],
                          {"If-Match": first["etag"]})
    t.expect(412, status, "update with a stale ETag")

    # A refresh token used twice: 200, then 401 with a WARN line "refresh token reuse detected"
    # carrying the request's request_id and trace_id. The LogQL checks filter on this request.
    status, _, doc = t.call(1, "POST", "/api/v1/auth/login", {"email": users[0]["email"], "password": password})
    t.expect(200, status, "login for a refresh token")
    refresh = doc["refresh_token"]
    status, _, _ = t.call(1, "POST", "/api/v1/auth/refresh", {"refresh_token": refresh})
    t.expect(200, status, "refresh")
    status, hdrs, _ = t.call(1, "POST", "/api/v1/auth/refresh", {"refresh_token": refresh})
    t.expect(401, status, "refresh with a used refresh token")
    t.reuse_request_id = next((v for k, v in hdrs.items() if k.lower() == "x-request-id"), None)

    deadline = time.monotonic() + seconds
    it = 0
    while time.monotonic() < deadline and it < 400:
        for u in users:
            side = it + u["n"]
            t.call(side, "GET", "/api/v1/users/me", token=u["token"])
            t.call(side + 1, "GET", f"/api/v1/projects/{u['project']}/tasks", token=u["token"])
            task = u["tasks"][it % len(u["tasks"])]
            t.call(side, "GET", f"/api/v1/tasks/{task['id']}", token=u["token"])
            t.call(side + 1, "GET", f"/api/v1/tasks/{task['id']}", token=u["token"])
            if it % 3 == 0:  # a write on one instance invalidates the caches of the other
                t.call(side, "PATCH", f"/api/v1/tasks/{task['id']}", {"description": f"round {it}"}, u["token"])
            if it % 4 == 0:
                t.call(side, "GET", f"/api/v1/tasks/{uuid.uuid4()}", token=u["token"])  # 404
                t.call(side + 1, "GET", "/api/v1/no-such-thing", token=u["token"])  # 404, route unmatched
        if it % 6 == 0:
            # Writes and logins all along, so that their routes have rates in every window and
            # not just a count from before the first scrape.
            u = users[it % len(users)]
            t.call(it, "POST", "/api/v1/auth/login", {"email": u["email"], "password": password})
            t.call(it + 1, "POST", f"/api/v1/projects/{u['project']}/tasks", {"title": f"Task round {it}"}, u["token"])
            t.call(it, "POST", "/api/v1/projects", {"name": f"Dash project round {it}"}, u["token"])
            t.call(it + 1, "POST", "/api/v1/auth/login", {"email": u["email"], "password": "wrong-password-123"})
        if it % 20 == 0:
            email = f"dash-{run}-r{it}@example.com"
            t.call(it, "POST", "/api/v1/auth/register", {"email": email, "password": password, "display_name": "Dash"})
        if it % 2 == 0:
            # Anonymous: 401 while the small per-address quota lasts, then 429.
            for k in range(3):
                t.call(it + k, "GET", "/api/v1/projects")
        it += 1
        time.sleep(0.15)
    for want in (200, 201, 401, 404, 412, 429):
        if not t.statuses.get(want):
            raise SystemExit(f"traffic: no {want} response among {t.statuses}")
    return t


# ---------------------------------------------------------------------------------------------
# Dashboards: variables and expressions

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
    required = {"service-overview.json", "dependencies.json", "slo.json", "logs-and-traces.json"}
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


# ---------------------------------------------------------------------------------------------
# PromQL evaluation

LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(?P<sel>.+?)\s*,\s*)?(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)
QUERY_RESULT_RE = re.compile(r"^\s*query_result\((?P<q>.*)\)\s*$", re.S)
MULTI_EQ_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=|!=)\s*"[^"]*\$\{?([A-Za-z_][A-Za-z0-9_]*)')


def summarize_result(doc):
    """(number of series or values, number of non-NaN values)."""
    data = doc.get("data") or {}
    rtype, result = data.get("resultType"), data.get("result")
    if rtype == "scalar" or rtype == "string":
        return 1, 0 if str(result[1]).lower() == "nan" else 1
    values = []
    for r in result or []:
        if "value" in r:
            values.append(r["value"][1])
        for v in r.get("values", []):
            values.append(v[1])
    finite = sum(1 for v in values if str(v).lower() != "nan")
    return len(result or []), finite


def allowed(source, table, pass_name=None):
    for entry in table:
        if len(entry) == 2:
            pattern, reason = entry
            if re.search(pattern, source):
                return reason
        else:
            pattern, when, reason = entry
            if when == pass_name and re.search(pattern, source):
                return reason
    return None


class Report:
    def __init__(self):
        self.rows = []
        self.failures = []

    def fail(self, source, message):
        if (source, message) not in self.failures:
            self.failures.append((source, message))


def check_promql(prom, items, rules, report):
    """items: (kind, source, expr, dashboard). rules: (type, source, expr). Fills report.rows."""
    checked = with_data = allowed_empty = 0
    at = time.time()
    work = []
    for kind, source, raw, dash in items:
        if kind not in ("promql", "prom-var"):
            continue
        values, multi = variable_values(dash)
        for m in MULTI_EQ_RE.finditer(raw):
            if m.group(3) in multi:
                report.fail(source, f"multi-value variable ${m.group(3)} used with `{m.group(2)}` (needs =~ or !~)")
        expr, missing = substitute(raw, values)
        if missing:
            report.fail(source, f"undefined variable(s) {', '.join(sorted(set(missing)))}")
            continue
        work.append((kind, source, expr))
    for rtype, source, expr in rules:
        work.append((rtype, source, expr))

    for kind, source, expr in work:
        checked += 1
        shown = " ".join(expr.split())
        if kind == "prom-var":
            lv = LABEL_VALUES_RE.match(expr)
            qr = QUERY_RESULT_RE.match(expr)
            if lv:
                label, sel = lv.group("label"), lv.group("sel")
                if sel:
                    q = f"count by ({label}) ({sel})"
                    status, doc = prom_query(prom, q, at)
                    if doc.get("status") != "success":
                        report.fail(source, f"{shown}: {doc.get('error')}")
                        report.rows.append(("FAIL", source, shown, "error"))
                        continue
                    vals = sorted({r["metric"].get(label, "") for r in doc["data"]["result"]} - {""})
                else:
                    status, doc = prom_get(prom, f"/api/v1/label/{label}/values", {})
                    vals = sorted(doc.get("data") or [])
                if vals:
                    with_data += 1
                    report.rows.append(("ok", source, shown, f"{len(vals)} values: {', '.join(vals[:6])}{' ...' if len(vals) > 6 else ''}"))
                else:
                    report.fail(source, f"{shown}: no value for label {label}")
                    report.rows.append(("FAIL", source, shown, "no values"))
                continue
            if qr:
                expr = qr.group("q")
            else:
                report.fail(source, f"unsupported variable query {shown}")
                report.rows.append(("FAIL", source, shown, "unsupported"))
                continue
        status, doc = prom_query(prom, expr, at)
        if doc.get("status") != "success":
            report.fail(source, f"does not evaluate: {doc.get('errorType')}: {doc.get('error')}\n    {shown}")
            report.rows.append(("FAIL", source, shown, f"error: {doc.get('error')}"))
            continue
        for w in doc.get("warnings") or []:
            print(f"  warning from Prometheus for {source}: {w}")
        n, finite = summarize_result(doc)
        count = f"{n} series" + (f", {n - finite} NaN" if finite < n else "")
        if finite > 0:
            with_data += 1
            note = "ok" if kind != "alert" else "FIRING"
            report.rows.append((note, source, shown, count))
            continue
        reason = allowed(source, ALLOWED_EMPTY_PROMQL)
        if reason:
            allowed_empty += 1
            report.rows.append(("empty", source, shown, f"{count} (allowed: {reason})"))
        else:
            report.fail(source, f"no data ({count}); if that is legitimate, add it to ALLOWED_EMPTY_PROMQL with the reason\n    {shown}")
            report.rows.append(("FAIL", source, shown, f"no data ({count})"))
    return checked, with_data, allowed_empty


def self_test(prom):
    """The check must be able to fail: a broken expression must be reported as an error and an
    unknown metric as empty, or every "ok" above means nothing."""
    problems = []
    _, doc = prom_query(prom, 'sum(rate(http_server_request_duration_seconds_count{job="tasklight"}[1m])')
    if doc.get("status") == "success":
        problems.append("a PromQL expression with an unclosed parenthesis was accepted")
    _, doc = prom_query(prom, 'sum(rate(no_such_metric_total{job="tasklight"}[1m]))')
    if doc.get("status") != "success" or summarize_result(doc)[1] != 0:
        problems.append(f"an unknown metric did not come back empty: {doc}")
    try:
        parse_logql('{service="tasklight"} | json | status >= ')
        problems.append("a LogQL query without a value after >= was accepted")
    except LogQLError:
        pass
    return problems


def loaded_rules(prom):
    """Every rule Prometheus loaded, as (type, source, expr), plus evaluation problems."""
    status, doc = prom_get(prom, "/api/v1/rules", {})
    if doc.get("status") != "success":
        raise SystemExit(f"cannot list rules: {doc}")
    out, problems = [], []
    for g in doc["data"]["groups"]:
        fname = os.path.basename(g.get("file", "?"))
        for r in g["rules"]:
            if r["type"] == "recording":
                out.append(("recording", f"rule {fname} | {g['name']} | {r['name']}", r["query"]))
            else:
                labels = ",".join(f"{k}={v}" for k, v in sorted((r.get("labels") or {}).items()) if k in ("long_window", "short_window"))
                out.append(("alert", f"alert {fname} | {g['name']} | {r['name']}{' ' + labels if labels else ''}", r["query"]))
            if r.get("health") == "err":
                problems.append(f"rule {r['name']} in {fname}: evaluation error: {r.get('lastError')}")
    return out, problems, doc["data"]["groups"]


# ---------------------------------------------------------------------------------------------
# LogQL: a small parser and evaluator for the subset the dashboards use

TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|=|>|<|\||\{|\}|\(|\)|\[|\]|,|\+|-|\*|/|%|\^)
  | (?P<num>\d+(?:\.\d+)?(?:[a-zA-Z]+(?:\d+(?:\.\d+)?[a-zA-Z]+)*)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)
CMP_OPS = {"=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="}
LINE_OPS = {"|=", "|~", "!=", "!~"}


class LogQLError(Exception):
    pass


def tokenize(q):
    toks, pos = [], 0
    while pos < len(q):
        m = TOKEN_RE.match(q, pos)
        if not m:
            raise LogQLError(f"cannot read {q[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            toks.append((kind, m.group(kind)))
    return toks


def unquote(tok):
    kind, text = tok
    if kind != "str":
        raise LogQLError(f"expected a string, got {text!r}")
    if text.startswith("`"):
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError as err:
        raise LogQLError(f"bad string {text}: {err}")


class Pipeline:
    def __init__(self, matchers):
        self.matchers = matchers  # [(name, op, value)]
        self.stages = []          # ("line", op, value) | ("json", params) | ("filter", dnf) | ...
        self.refs = []            # (name, after_json) field or label references
        self.json = False


def parse_logql(q):
    """Returns (pipelines, grouping labels). Raises LogQLError on what it cannot read."""
    toks = tokenize(q)
    pipelines, groups = [], []
    cur = None
    i = 0

    def peek(k=0):
        return toks[i + k] if i + k < len(toks) else (None, None)

    def parse_value():
        nonlocal i
        kind, text = peek()
        if kind == "str":
            i += 1
            return ("str", unquote((kind, text)))
        if kind == "num":
            i += 1
            if not re.fullmatch(r"\d+(\.\d+)?", text):
                return ("unsupported", text)
            return ("num", float(text))
        raise LogQLError(f"expected a value, got {text!r}")

    def parse_comparison():
        nonlocal i
        kind, name = peek()
        if kind != "ident":
            raise LogQLError(f"expected a label name, got {name!r}")
        op = peek(1)[1]
        if op not in CMP_OPS:
            raise LogQLError(f"expected a comparison after {name}, got {op!r}")
        i += 2
        value = parse_value()
        cur.refs.append((name, cur.json))
        return (name, op, value)

    while i < len(toks):
        kind, text = toks[i]
        if text == "{" and kind == "op":
            i += 1
            matchers = []
            while peek()[1] != "}":
                k, name = peek()
                op = peek(1)[1]
                if k != "ident" or op not in ("=", "!=", "=~", "!~"):
                    raise LogQLError(f"bad stream matcher near {name!r}")
                i += 2
                matchers.append((name, op, unquote(peek())))
                i += 1
                if peek()[1] == ",":
                    i += 1
                elif peek()[1] != "}":
                    raise LogQLError("expected , or } in a stream selector")
            i += 1
            cur = Pipeline(matchers)
            pipelines.append(cur)
            continue
        if cur is not None and kind == "op" and text in LINE_OPS and peek(1)[0] == "str":
            cur.stages.append(("line", text, unquote(peek(1))))
            i += 2
            continue
        if cur is not None and text == "|" and peek(1)[0] == "ident":
            stage = peek(1)[1]
            i += 2
            if stage == "json":
                params = []
                while peek()[0] == "ident" and peek(1)[1] == "=" and peek(2)[0] == "str":
                    params.append((peek()[1], unquote(peek(2))))
                    i += 3
                    if peek()[1] == ",":
                        i += 1
                for name, path in params:
                    cur.refs.append((re.split(r"[.\[]", path, maxsplit=1)[0], True))
                cur.stages.append(("json", params))
                cur.json = True
            elif stage in ("logfmt", "pattern", "regexp", "unpack"):
                raise LogQLError(f"parser `{stage}`: the lines are JSON, use `| json`")
            elif stage == "line_format":
                tmpl = unquote(peek())
                i += 1
                for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", " ".join(re.findall(r"\{\{(.*?)\}\}", tmpl))):
                    cur.refs.append((name, cur.json))
                cur.stages.append(("line_format", tmpl))
            elif stage in ("keep", "drop", "label_format", "distinct"):
                raise LogQLError(f"stage `{stage}` is not supported by this checker")
            elif stage == "unwrap":
                if peek(1)[1] == "(":  # unwrap duration(x) / bytes(x)
                    i += 2
                name = peek()[1]
                i += 1
                if peek()[1] == ")":
                    i += 1
                cur.refs.append((name, cur.json))
                cur.stages.append(("unwrap", name))
            elif stage == "decolorize":
                pass
            else:
                i -= 1  # a label filter: name op value [and|or|, name op value ...]
                dnf = [[parse_comparison()]]
                while True:
                    k, t = peek()
                    if t in ("and", ","):
                        i += 1
                        dnf[-1].append(parse_comparison())
                    elif t == "or":
                        i += 1
                        dnf.append([parse_comparison()])
                    elif t == "(":
                        raise LogQLError("parenthesised label filters are not supported by this checker")
                    else:
                        break
                cur.stages.append(("filter", dnf))
            continue
        if text in ("by", "without") and peek(1)[1] == "(":
            i += 2
            while peek()[1] != ")":
                if peek()[0] == "ident":
                    groups.append(peek()[1])
                i += 1
            i += 1
            continue
        if text == "[":
            cur = None  # a range ends the log pipeline
            while peek()[1] not in ("]", None):
                i += 1
            i += 1
            continue
        if text == ")" and cur is not None:
            cur = None
        i += 1
    if not pipelines:
        raise LogQLError("no stream selector")
    return pipelines, groups


def regex_full(pattern, value):
    flags = 0
    if pattern.startswith("(?i)"):
        pattern, flags = pattern[4:], re.IGNORECASE
    return re.fullmatch(f"(?:{pattern})", value, flags) is not None


def compare(value, op, expected):
    vtype, v = expected
    if vtype == "unsupported":
        return True
    if vtype == "num":
        try:
            x = float(value)
        except (TypeError, ValueError):
            return False
        return {"==": x == v, "=": x == v, "!=": x != v, ">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v}[op]
    if op in ("=", "=="):
        return value == v
    if op == "!=":
        return value != v
    if op == "=~":
        return regex_full(v, value)
    if op == "!~":
        return not regex_full(v, value)
    raise LogQLError(f"operator {op} on a string")


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "_"))
        elif v is None:
            continue
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        elif isinstance(v, (int, float)):
            out[key] = json.dumps(v)
        elif isinstance(v, list):
            out[key] = json.dumps(v)
        else:
            out[key] = str(v)
    return out


def stream_labels_of(rec):
    return {k: str(rec[k]) for k in STREAM_LABELS if k in rec}


def run_pipeline(p, lines):
    matched = 0
    for raw, rec in lines:
        labels = stream_labels_of(rec)
        if not all(compare(labels.get(n, ""), op, ("str", v)) for n, op, v in p.matchers):
            continue
        ok = True
        for st in p.stages:
            if st[0] == "line":
                _, op, v = st
                hit = (v in raw) if op in ("|=", "!=") else (re.search(v, raw) is not None)
                ok = hit if op in ("|=", "|~") else not hit
            elif st[0] == "json":
                fields = flatten(rec)
                if st[1]:
                    for name, path in st[1]:
                        labels[name] = fields.get(path.replace(".", "_"), "")
                else:
                    for k, v in fields.items():
                        labels[k + "_extracted" if k in STREAM_LABELS else k] = v
            elif st[0] == "filter":
                ok = any(all(compare(labels.get(n, ""), op, val) for n, op, val in conj) for conj in st[1])
            if not ok:
                break
        if ok:
            matched += 1
    return matched


def grafana_regex_escape(value):
    """What Grafana's Loki (and Prometheus) datasource puts in the query for a value of a multi-value
    variable: regex metacharacters escaped with a backslash that is itself escaped for the
    double-quoted string, so `{task_id}` becomes `\\{task_id\\}` in the query text."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]+?.()|]", lambda m: "\\\\" + m.group(0), value)


def check_refs(pipelines, groups, keys, source, report):
    """Every label or field a query uses must exist: stream labels or keys of the captured lines."""
    for p in pipelines:
        for name, _, _ in p.matchers:
            if name not in STREAM_LABELS:
                report.fail(source, f"stream selector uses label `{name}`, which the log shipper does not set (only {sorted(STREAM_LABELS)}); use `| json | {name}=...`")
        if not any(op in ("=", "=~") and not compare("", op, ("str", v)) for _, op, v in p.matchers):
            report.fail(source, "stream selector has no matcher that excludes the empty value (Loki refuses it)")
        for name, after_json in p.refs:
            if name in STREAM_LABELS or name in LOKI_SPECIAL_LABELS:
                continue
            base = name[: -len("_extracted")] if name.endswith("_extracted") else name
            if not after_json:
                report.fail(source, f"`{name}` is used before `| json`: it is not a stream label")
            elif base not in keys:
                report.fail(source, f"field `{base}` is not a key of any captured log line")
    any_json = any(p.json for p in pipelines)
    for g in groups:
        if g in STREAM_LABELS:
            continue
        base = g[: -len("_extracted")] if g.endswith("_extracted") else g
        if not any_json or base not in keys:
            report.fail(source, f"groups by `{g}`, which is neither a stream label nor a JSON field")


def check_logql(items, lines, report, request_id=None):
    keys = set()
    for _, rec in lines:
        keys.update(flatten(rec).keys())
    access = [rec for _, rec in lines if rec.get("target") == "tasklight::access"]
    # One real request to filter on, so that the instance, level, route, request_id and trace_id
    # filters are all exercised: the refresh-token reuse (a 401 with a WARN line of its own).
    chosen = next((r for r in access if request_id and r.get("request_id") == request_id), None)
    if chosen is None:
        report.fail("logs", f"no access line of request {request_id} (the refresh-token reuse) was captured")
        return 0, 0, 0
    if not chosen.get("trace_id"):
        report.fail("logs", f"the access line of request {request_id} has no trace_id")
        return 0, 0, 0
    # What the log shipper turns into labels must be in every line.
    for raw, rec in lines:
        missing = [k for k in STREAM_LABELS if k not in rec]
        if missing:
            report.fail("logs", f"a line lacks {missing}: {raw[:160]}")
            break
    checked = matched_both = allowed_empty = 0
    for kind, source, raw, dash in items:
        if kind not in ("logql", "loki-var"):
            continue
        checked += 1
        values, multi = variable_values(dash)
        shown = " ".join(raw.split()) if isinstance(raw, str) else json.dumps(raw)
        # The level variable's options must cover the levels the service prints.
        for v in dash.get("templating", {}).get("list", []):
            if v["name"] == "level" and v.get("type") == "custom":
                options = {o.strip().upper() for o in v["query"].split(",")}
                seen = {str(rec.get("level", "")).upper() for _, rec in lines}
                if not seen <= options:
                    report.fail(source, f"levels {sorted(seen - options)} are printed but not offered by $level")
        if kind == "loki-var":
            m = LABEL_VALUES_RE.match(raw) if isinstance(raw, str) else None
            if isinstance(raw, dict):
                sel, label = raw.get("stream", ""), raw.get("label", "")
            elif m:
                sel, label = m.group("sel") or "", m.group("label")
            else:
                report.fail(source, f"unsupported Loki variable query {raw!r}")
                continue
            if label not in STREAM_LABELS:
                report.fail(source, f"label_values of `{label}`, which is not a stream label")
            try:
                pipelines, _ = parse_logql(substitute(sel, values)[0]) if sel else ([Pipeline([])], [])
            except LogQLError as err:
                report.fail(source, f"does not parse: {err}")
                continue
            check_refs(pipelines, [], keys, source, report)
            vals = sorted({str(rec.get(label, "")) for raw_line, rec in lines
                           if run_pipeline(pipelines[0], [(raw_line, rec)])} - {""})
            if vals:
                matched_both += 1
                report.rows.append(("ok", source, shown, f"{len(vals)} values: {', '.join(vals)}"))
            else:
                report.fail(source, "no value in the captured lines")
                report.rows.append(("FAIL", source, shown, "no values"))
            continue
        one = dict(values)
        one.update({"instance_id": grafana_regex_escape(str(chosen["instance_id"])),
                    "level": grafana_regex_escape(str(chosen["level"])),
                    "route": grafana_regex_escape(str(chosen["route"])), "request_id": str(chosen["request_id"]),
                    "trace_id": str(chosen["trace_id"])})
        counts = {}
        for pass_name, vals in (("all", values), ("one", one)):
            expr, missing = substitute(raw, vals)
            if missing:
                report.fail(source, f"undefined variable(s) {', '.join(sorted(set(missing)))}")
                break
            try:
                pipelines, groups = parse_logql(expr)
            except (LogQLError, re.error) as err:
                report.fail(source, f"does not parse: {err}\n    {shown}")
                break
            if pass_name == "all":
                check_refs(pipelines, groups, keys, source, report)
            try:
                counts[pass_name] = min(run_pipeline(p, lines) for p in pipelines)
            except (LogQLError, re.error) as err:
                report.fail(source, f"cannot be evaluated: {err}")
                break
        if len(counts) < 2:
            report.rows.append(("FAIL", source, shown, "error"))
            continue
        notes, empty_ok, failed = [], [], False
        for pass_name in ("all", "one"):
            if counts[pass_name] == 0:
                reason = allowed(source, ALLOWED_EMPTY_LOGQL, pass_name)
                if reason:
                    empty_ok.append(f"{pass_name}: {reason}")
                else:
                    failed = True
                    report.fail(source, f"matches no captured line with {'every filter at All' if pass_name == 'all' else 'the filters set to one request'}; if that is legitimate, add it to ALLOWED_EMPTY_LOGQL\n    {shown}")
        summary = f"{counts['all']} lines with every filter at All, {counts['one']} for request {chosen['request_id']}"
        if empty_ok:
            summary += f" (allowed empty: {'; '.join(empty_ok)})"
        if failed:
            report.rows.append(("FAIL", source, shown, summary))
        elif empty_ok:
            allowed_empty += 1
            report.rows.append(("empty", source, shown, summary))
        else:
            matched_both += 1
            report.rows.append(("ok", source, shown, summary))
    return checked, matched_both, allowed_empty


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


# ---------------------------------------------------------------------------------------------


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = fn()
        if ok:
            return detail
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}: {detail}")
        time.sleep(0.5)


def read_lines(paths):
    lines = []
    for path in paths:
        with open(path, errors="replace") as f:
            for raw in f:
                raw = raw.strip()
                if not raw.startswith("{"):
                    continue
                try:
                    lines.append((raw, json.loads(raw)))
                except ValueError:
                    pass
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--api", required=True, help="comma-separated base URLs of the instances' public listeners")
    ap.add_argument("--logs", required=True, help="comma-separated files holding the instances' stdout")
    ap.add_argument("--dashboards", required=True)
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--traffic-seconds", type=float, default=12)
    args = ap.parse_args()
    prom = args.prometheus.rstrip("/")
    apis = [a.rstrip("/") for a in args.api.split(",")]
    report = Report()

    def instances_up():
        _, doc = prom_query(prom, 'count(up{job="tasklight"} == 1)')
        res = (doc.get("data") or {}).get("result") or []
        n = int(float(res[0]["value"][1])) if res else 0
        return n == args.instances, f"{n} of {args.instances} targets up"

    print(f"== waiting for Prometheus to scrape {args.instances} instances")
    wait_for("targets up", instances_up, 30)

    print(f"== driving traffic for {args.traffic_seconds:.0f}s")
    started = time.monotonic()
    traffic = drive_traffic(apis, args.traffic_seconds)
    print(f"   {traffic.requests} requests in {time.monotonic() - started:.1f}s, statuses {dict(sorted(traffic.statuses.items()))}")

    def scraped():
        _, doc = prom_query(prom, 'sum(increase(http_server_request_duration_seconds_count{job="tasklight", route="/api/v1/users/me"}[10s]))')
        res = (doc.get("data") or {}).get("result") or []
        return bool(res) and float(res[0]["value"][1]) > 0, res
    wait_for("the traffic in Prometheus", scraped, 30)

    rules, rule_problems, groups = loaded_rules(prom)
    if groups:
        # Recording rules that read other recorded series need a few evaluations after the traffic.
        def evaluated():
            _, doc = prom_get(prom, "/api/v1/rules", {})
            stale = [g["name"] for g in doc["data"]["groups"]
                     if not g.get("lastEvaluation") or g["lastEvaluation"].startswith("0001")]
            return not stale, stale
        wait_for("every rule group to be evaluated", evaluated, 30)
        time.sleep(3)
        rules, rule_problems, groups = loaded_rules(prom)
    for p in rule_problems:
        report.fail("rules", p)
    print(f"== {len(groups)} rule groups loaded from the rule files, {len(rules)} rules")

    for p in self_test(prom):
        report.fail("self-test", p)

    for p in structural_checks(args.dashboards):
        report.fail("dashboards", p)

    items = collect(args.dashboards)
    for kind, source, raw, _ in items:
        if kind == "error":
            report.fail(source, raw)

    n_prom, prom_data, prom_empty = check_promql(prom, items, rules, report)
    prom_rows = list(report.rows)
    report.rows = []

    time.sleep(0.5)  # let the instances' log writers flush
    lines = read_lines(args.logs.split(","))
    keys = set()
    for _, rec in lines:
        keys.update(flatten(rec).keys())
    print(f"== {len(lines)} JSON log lines captured; keys: {', '.join(sorted(keys))}")
    n_logql, logql_data, logql_empty = check_logql(items, lines, report, traffic.reuse_request_id)
    logql_rows = report.rows
    n_links = check_links(args.dashboards, keys, report)

    print()
    print(f"== PromQL expressions ({n_prom}: dashboards and rule files)")
    for status, source, expr, detail in prom_rows:
        print(f"[{status:5}] {source}: {detail}")
        print(f"        {expr}")
    print()
    print(f"== LogQL queries ({n_logql})")
    for status, source, expr, detail in logql_rows:
        print(f"[{status:5}] {source}: {detail}")
        print(f"        {expr}")
    print()
    if report.failures:
        print(f"== {len(report.failures)} FAILURES")
        for source, message in report.failures:
            print(f"FAIL {source}: {message}")
        print()
    unique = len({e for _, _, e, _ in prom_rows})
    firing = sum(1 for r in prom_rows if r[0] == "FIRING")
    print(f"PromQL: {n_prom} expressions checked ({unique} distinct): {prom_data} with data, {prom_empty} allowed empty"
          f"{f', {firing} alert expressions returning data (firing)' if firing else ''}")
    print(f"LogQL: {n_logql} queries checked: {logql_data} matching captured lines in both passes, {logql_empty} allowed empty in a pass")
    print(f"Data links checked: {n_links}")
    failed_sources = {source for source, _ in report.failures}
    rows = prom_rows + logql_rows
    passed = sum(1 for r in rows if r[0] != "FAIL" and r[1] not in failed_sources)
    failed = len(rows) - passed + len(failed_sources - {r[1] for r in rows})
    print(f"dashboards: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
