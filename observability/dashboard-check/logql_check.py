"""Every LogQL query of the dashboards, checked against the JSON log lines the instances printed."""

import json
import re

from dashboards import LABEL_VALUES_RE, substitute, variable_values
from logql import (LOKI_SPECIAL_LABELS, STREAM_LABELS, LogQLError, Pipeline, compare, flatten, parse_logql,
                   run_pipeline)
from report import allowed


# What may be empty, and why. Every query not listed here must match a captured line.


# LogQL queries allowed to match no captured line, as (regex matched against the query's
# source, pass, reason); pass is "all" (every filter at All) or "one" (filtered on one request).
ALLOWED_EMPTY_LOGQL = [
    (r"\| #\d+ Slow requests from the access log \|", "all",
     "no request takes over 250 ms on an idle test machine"),
    (r"\| #\d+ Slow requests from the access log \|", "one",
     "no request takes over 250 ms on an idle test machine"),
    (r"\| #\d+ Answers nginx made itself ", "all",
     "every instance answers in this check; observability/check-balancer-logs.sh makes nginx answer 502 and 504 itself and runs this query over those lines"),
    (r"\| #\d+ Answers nginx made itself ", "one",
     "every instance answers in this check; observability/check-balancer-logs.sh makes nginx answer 502 and 504 itself and runs this query over those lines"),
]


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
    # Queries of nginx's lines ({service="nginx"}) are filtered on one of nginx's own answers: that
    # request's line when it went through nginx, else a 4xx or 5xx nginx logged, else any.
    nginx = [rec for _, rec in lines if rec.get("service") == "nginx" and rec.get("target") == "nginx::access"]
    chosen_nginx = (next((r for r in nginx if r.get("request_id") == chosen["request_id"]), None)
                    or next((r for r in nginx if int(r.get("status") or 0) >= 400), None)
                    or (nginx[0] if nginx else None))
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
        one_id = chosen["request_id"]
        if isinstance(raw, str) and re.search(r'\{[^}]*service\s*=\s*"nginx"', raw):
            if chosen_nginx is None:
                report.fail(source, "queries nginx's lines, but no nginx access line was captured")
                report.rows.append(("FAIL", source, shown, "no nginx lines"))
                continue
            one.update({"level": grafana_regex_escape(str(chosen_nginx["level"])),
                        "request_id": str(chosen_nginx["request_id"]), "trace_id": str(chosen_nginx["trace_id"])})
            one_id = chosen_nginx["request_id"]
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
        summary = f"{counts['all']} lines with every filter at All, {counts['one']} for request {one_id}"
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
