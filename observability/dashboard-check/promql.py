"""Every PromQL expression of the dashboards and rule files, evaluated through Prometheus."""

import os
import re
import time

from api import prom_get, prom_query
from dashboards import LABEL_VALUES_RE, QUERY_RESULT_RE, substitute, variable_values
from report import allowed


# What may be empty, and why. Everything not listed here must return data.


# PromQL expressions allowed to return no series (or only NaN) in this test, as
# (regex matched against the expression's source, reason). A source looks like
# "service-overview.json | #12 5xx ratio by route | A" or "rule recording.yml | <group> | <record name>".
ALLOWED_EMPTY_PROMQL = [
    # Every alerting rule: on a healthy system none may fire, so an empty result is the expected
    # one; they are still evaluated, so each must parse and evaluate without error. (Recording
    # rules are not listed: each must return data.)
    (r"^alert ", "an alert expression returns nothing while the system is healthy"),
    # pg_stat_replication has a row per standby streaming from the server; the check's PostgreSQL
    # (like compose's) is a primary without standbys, so the per-standby lag has no series. Its
    # target B (standbys connected, 0 here) must still return data.
    (r"^dependencies\.json \| #\d+ PostgreSQL replication lag .* \| A$",
     "no standby streams from the check's PostgreSQL, so pg_stat_replication (the lag's source) has no row"),
]


# LogQL queries allowed to match no captured line, as (regex matched against the query's


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
