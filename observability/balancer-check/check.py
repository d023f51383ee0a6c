#!/usr/bin/env python3
"""The load balancer's own view, end to end: run by observability/check-balancer-logs.sh, which
starts a tasklight instance, nginx (a copy of observability/nginx/nginx.conf) in front of it and of
a dead port, a second nginx server in front of an upstream that answers too late, mtail on nginx's
access log and Prometheus scraping mtail with the rule files. This script:

  1. sends requests through nginx while the instance is up (200s, some retried off the dead port,
     a 404, a 401, ids valid, invalid and absent, traceparent or not, a /health probe), then stops
     the instance and sends more (502s nginx makes itself), then sends some to the late upstream
     (504s),
  2. checks every answer: one X-Request-Id header, the client's id when the instance would keep it,
     else nginx's own (32 hex digits); and finds every answer by that id in nginx's JSON access log
     (status, level, upstream_addr, upstream_status, upstream_header_time, duration_ms), and, when
     an instance answered, the instance's access line with the same request_id and trace_id,
  3. checks mtail's counters against the answers sent, by status,
  4. checks that Prometheus has them (job nginx-log), that the balancer SLO's recording rules have
     data and that TasklightBalancerAvailabilityBudgetBurn (1h/5m) is pending,
  5. runs the LogQL queries for nginx's lines (the balancer alert's runbook, the dashboards'
     {service="nginx"} queries) over the captured lines with observability/dashboard-check/logql.py.

Only the Python standard library and PyYAML. Only 127.0.0.1 is contacted.
"""

import argparse
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HEX32 = re.compile(r"^[0-9a-f]{32}$")
TRACE_1 = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_2 = "0af7651916cd43dd8448eb211c80319c"


class Checks:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"   FAIL: {what}")
        return cond


def request(base, path, method="GET", headers=None, body=None, timeout=15):
    """(status, [(header, value)...]) of one request; never raises on an HTTP status."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status, resp.headers.items()
    except urllib.error.HTTPError as err:
        err.read()
        return err.code, err.headers.items()


def read_json_lines(path):
    out = []
    with open(path, errors="replace") as f:
        for raw in f:
            raw = raw.strip()
            if raw.startswith("{"):
                try:
                    out.append((raw, json.loads(raw)))
                except ValueError:
                    pass
    return out


def metrics(url):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if m:
            labels = frozenset(re.findall(r'([a-zA-Z_]+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def prom_query(prom, expr):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    doc = json.load(urllib.request.urlopen(url, timeout=5))
    return doc["data"]["result"]


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = fn()
        if ok or time.monotonic() > deadline:
            return ok, detail
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("nginx", "late-nginx", "instance-api", "dead", "late", "nginx-log", "nginx-stdout",
                 "instance-log", "mtail", "prometheus", "repo"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--instance-pid", type=int, required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.repo, "observability", "dashboard-check"))
    from dashboards import collect, substitute, variable_values  # noqa: E402
    from logql import parse_logql, run_pipeline  # noqa: E402
    from logql_check import grafana_regex_escape  # noqa: E402

    c = Checks()
    sent = []  # dicts: name, status, id, client_id, phase, path, trace (expected trace id or None)

    def send(name, base, path, phase, method="GET", client_id=None, trace=None, body=None):
        headers = {}
        if client_id is not None:
            headers["X-Request-Id"] = client_id
        if trace:
            headers["traceparent"] = f"00-{trace}-00f067aa0ba902b7-01"
        status, hdrs = request(base, path, method, headers, body)
        ids = [v for k, v in hdrs if k.lower() == "x-request-id"]
        parents = [v for k, v in hdrs if k.lower() == "traceparent"]
        c.ok(len(ids) == 1, f"{name}: {len(ids)} X-Request-Id headers in the {status} answer, expected exactly 1: {ids}")
        rid = ids[0] if ids else ""
        valid = client_id is not None and re.fullmatch(r"[A-Za-z0-9._-]{1,128}", client_id)
        if valid:
            c.ok(rid == client_id, f"{name}: X-Request-Id {rid!r}, expected the client's {client_id!r}")
        else:
            c.ok(bool(HEX32.match(rid)), f"{name}: X-Request-Id {rid!r}, expected nginx's own (32 hex digits)")
        answered_trace = parents[0].split("-")[1] if parents and parents[0].count("-") == 3 else None
        sent.append({"name": name, "status": status, "id": rid, "phase": phase, "path": path,
                     "client_trace": trace, "answered_trace": answered_trace})
        print(f"   {name}: {method} {path} -> {status}, X-Request-Id {rid}")
        return status

    api = args.nginx
    # --- 1. the instance is up -------------------------------------------------------------
    print("== instance up: 200s (the dead port retried), a 404, a 401, a /health probe")
    login = {"email": "nobody@example.com", "password": "not the password at all"}
    send("ok-with-id-and-trace", api, "/api/v1/openapi.json", "up", client_id="lb-check-ok-1", trace=TRACE_1)
    for i in range(1, 5):
        send(f"ok-without-id-{i}", api, "/api/v1/openapi.json", "up")
    send("ok-invalid-id", api, "/api/v1/openapi.json", "up", client_id="not a valid id!")
    send("ok-too-long-id", api, "/api/v1/openapi.json", "up", client_id="x" * 129)
    send("not-found", api, "/api/v1/no-such-thing?token=secret-in-query", "up", client_id="lb-check-404")
    send("login-refused", api, "/api/v1/auth/login", "up", method="POST", body=login)
    send("health-probe", api, "/health/live", "up")
    for s in sent:
        c.ok(s["status"] < 500, f"{s['name']}: {s['status']} while the instance is up")

    # --- 2. the instance stops: nginx answers 502 itself -------------------------------------
    print(f"== stopping the instance (pid {args.instance_pid}): 502s from nginx")
    os.kill(args.instance_pid, signal.SIGTERM)
    host, port = args.instance_api.split(":")

    def stopped():
        try:
            socket.create_connection((host, int(port)), 0.2).close()
            return False, "still accepting connections"
        except OSError:
            return True, ""
    ok, _ = wait_for("the instance to stop", stopped, 20)
    if not c.ok(ok, "the instance still accepts connections 20 s after SIGTERM"):
        return report(c)
    send("bad-gateway-with-id", api, "/api/v1/openapi.json", "down", client_id="lb-check-502-a")
    # A scrape between the first 502 and the others, so that the 502 counter rises in Prometheus
    # (rate() does not count the sample a series starts with).
    time.sleep(2.5)
    send("bad-gateway-without-id", api, "/api/v1/openapi.json", "down")
    send("bad-gateway-with-trace", api, "/api/v1/openapi.json", "down", trace=TRACE_2)
    send("bad-gateway-post", api, "/api/v1/auth/login", "down", method="POST", body=login)
    for s in sent:
        if s["phase"] == "down":
            c.ok(s["status"] == 502, f"{s['name']}: {s['status']}, expected 502 (no instance answers)")

    # --- 3. an upstream that answers after proxy_read_timeout: 504 ---------------------------
    print("== an upstream too slow for proxy_read_timeout: 504s from nginx")
    send("timeout-with-id", args.late_nginx, "/api/v1/tasks", "late", client_id="lb-check-504-a")
    send("timeout-without-id", args.late_nginx, "/api/v1/tasks", "late")
    for s in sent:
        if s["phase"] == "late":
            c.ok(s["status"] == 504, f"{s['name']}: {s['status']}, expected 504 (proxy_read_timeout)")

    # --- each answer in nginx's log, by its request id ----------------------------------------
    time.sleep(0.5)
    nginx_lines = read_json_lines(args.nginx_log)
    stdout_lines = read_json_lines(args.nginx_stdout)
    instance_lines = read_json_lines(args.instance_log)
    print(f"== {len(nginx_lines)} nginx access lines ({len(stdout_lines)} on its stdout), "
          f"{len(instance_lines)} instance lines")
    c.ok([r for r, _ in nginx_lines] == [r for r, _ in stdout_lines],
         "nginx's stdout (for the log shipper) and its log file (for mtail) differ")
    for raw, rec in nginx_lines:
        missing = [k for k in ("service", "instance_id", "level", "request_id", "trace_id", "timestamp") if k not in rec]
        if not c.ok(not missing and rec.get("service") == "nginx" and rec.get("target") == "nginx::access",
                    f"an nginx line lacks {missing} or is not service nginx: {raw[:200]}"):
            break
    c.ok(not any("secret-in-query" in raw for raw, _ in nginx_lines), "a query string reached nginx's log")

    retried = 0
    for s in sent:
        found = [rec for _, rec in nginx_lines if rec.get("request_id") == s["id"]]
        if not c.ok(len(found) == 1, f"{s['name']}: {len(found)} nginx lines with request_id {s['id']}, expected 1"):
            continue
        line = found[0]
        status = s["status"]
        level = "ERROR" if status >= 500 else "WARN" if status >= 400 else "INFO"
        c.ok(line["status"] == status, f"{s['name']}: nginx logged status {line['status']}, the client got {status}")
        c.ok(line["level"] == level, f"{s['name']}: level {line['level']}, expected {level}")
        c.ok(line["path"] == s["path"].split("?")[0], f"{s['name']}: path {line['path']!r}")
        ups = [u.strip() for u in line["upstream_status"].split(",")]
        addrs = [a.strip() for a in line["upstream_addr"].split(",")]
        headers_at = [h.strip() for h in line["upstream_header_time"].split(",")]
        theirs = [rec for _, rec in instance_lines
                  if rec.get("target") == "tasklight::access" and rec.get("request_id") == s["id"]]
        if s["phase"] == "up":
            c.ok(ups[-1] == str(status) and addrs[-1] == args.instance_api,
                 f"{s['name']}: the last attempt {addrs[-1]} answered {ups[-1]}, expected the instance's {status}")
            c.ok(all(u == "502" for u in ups[:-1]) and all(a == args.dead for a in addrs[:-1]),
                 f"{s['name']}: earlier attempts {line['upstream_addr']} / {line['upstream_status']}, expected the dead port's 502s")
            retried += len(ups) > 1
            if s["path"].startswith("/health/"):
                continue
            if c.ok(len(theirs) == 1, f"{s['name']}: {len(theirs)} instance access lines with request_id {s['id']}, expected 1"):
                c.ok(theirs[0]["status"] == status, f"{s['name']}: the instance logged {theirs[0]['status']}")
                c.ok(line["trace_id"] == theirs[0]["trace_id"] != "",
                     f"{s['name']}: nginx's trace_id {line['trace_id']!r} is not the instance's {theirs[0]['trace_id']!r}")
            if s["client_trace"]:
                c.ok(line["trace_id"] == s["client_trace"], f"{s['name']}: trace_id {line['trace_id']!r}, the client sent {s['client_trace']}")
            c.ok(line["trace_id"] == s["answered_trace"], f"{s['name']}: trace_id {line['trace_id']!r}, the answer's traceparent says {s['answered_trace']}")
        else:
            expected = "502" if s["phase"] == "down" else "504"
            c.ok(ups and all(u == expected for u in ups),
                 f"{s['name']}: upstream_status {line['upstream_status']!r}, expected only {expected}")
            c.ok(all(h == "-" for h in headers_at),
                 f"{s['name']}: upstream_header_time {line['upstream_header_time']!r}: an upstream sent headers")
            c.ok(not theirs, f"{s['name']}: an instance logged request {s['id']}, but none answered it")
            c.ok(line["trace_id"] == (s["client_trace"] or ""),
                 f"{s['name']}: trace_id {line['trace_id']!r}, expected {s['client_trace'] or 'none'} (the client's, as no instance answered)")
            if s["phase"] == "down":
                # An address nginx tried, or the upstream's name: every server was marked failed
                # (max_fails=1, fail_timeout=5s), so nginx tried none ("no live upstreams").
                c.ok(set(addrs) <= {args.instance_api, args.dead, "tasklight"},
                     f"{s['name']}: upstream_addr {line['upstream_addr']}")
            else:
                c.ok(addrs == [args.late] and line["duration_ms"] >= 1900,
                     f"{s['name']}: upstream_addr {line['upstream_addr']}, duration_ms {line['duration_ms']} (proxy_read_timeout is 2 s)")
    c.ok(retried >= 1, "no request was retried off the dead port (upstream_addr with two addresses)")
    print(f"   every answer found by its request id; {retried} of them retried off the dead port")

    # --- 3. mtail: nginx's answers by status ----------------------------------------------------
    expected = {}
    for s in sent:
        if not s["path"].startswith("/health/"):
            expected[str(s["status"])] = expected.get(str(s["status"]), 0) + 1

    def mtail_counts():
        m = metrics(args.mtail)
        got = {dict(k[1])["code"]: int(v) for k, v in m.items() if k[0] == "tasklight_balancer_requests_total"}
        unmatched = m.get(("tasklight_balancer_log_lines_unmatched_total", frozenset()), -1)
        return got == expected and unmatched == 0, (got, unmatched)
    ok, (got, unmatched) = wait_for("mtail's counters", mtail_counts, 10)
    c.ok(ok, f"mtail counted {got} (unmatched lines {unmatched}), expected {expected} and 0 "
             "(the /health probes left out)")
    print(f"== mtail: tasklight_balancer_requests_total {dict(sorted(got.items()))}, unmatched lines {unmatched:g}")

    # --- 4. Prometheus: job nginx-log, the balancer SLO's rules --------------------------------
    prom = args.prometheus

    def scraped():
        res = prom_query(prom, 'sum by (code) (tasklight_balancer_requests_total{job="nginx-log"})')
        have = {r["metric"]["code"]: int(float(r["value"][1])) for r in res}
        return have == expected, have
    ok, have = wait_for("Prometheus to scrape mtail", scraped, 20)
    c.ok(ok, f"Prometheus has {have} for tasklight_balancer_requests_total, mtail {expected}")

    def rules_have_data():
        values = {}
        for name in ("job:slo_balancer_availability_requests:rate5m", "job:slo_balancer_availability_errors:rate5m",
                     "job:slo_balancer_availability_errors:ratio_rate5m", "job:slo_balancer_availability_errors:ratio_rate1h"):
            res = prom_query(prom, name + '{job="nginx-log"}')
            values[name] = float(res[0]["value"][1]) if res else None
        return all(v is not None and v > 0 for v in values.values()), values
    ok, values = wait_for("the balancer SLO's recording rules", rules_have_data, 30)
    c.ok(ok, f"the balancer SLO's recording rules: {values}")
    print("== Prometheus: " + ", ".join(f"{k.split(':')[1]}:{k.split(':')[2]} {v:.3g}" if v is not None else f"{k} none"
                                        for k, v in values.items()))

    def pending():
        doc = json.load(urllib.request.urlopen(prom + "/api/v1/alerts", timeout=5))
        states = sorted((a["labels"].get("long_window"), a["state"]) for a in doc["data"]["alerts"]
                        if a["labels"].get("alertname") == "TasklightBalancerAvailabilityBudgetBurn")
        return ("1h", "pending") in states or ("1h", "firing") in states, states
    ok, states = wait_for("the balancer's burn-rate alert", pending, 20)
    c.ok(ok, f"TasklightBalancerAvailabilityBudgetBurn (1h/5m) is not pending: {states}")
    print(f"== TasklightBalancerAvailabilityBudgetBurn: {states}")

    # --- 5. LogQL over the captured lines ------------------------------------------------------
    import yaml
    lines = nginx_lines + instance_lines
    by_name = {s["name"]: s for s in sent}
    fivexx = sum(1 for s in sent if s["status"] >= 500)
    rules = yaml.safe_load(open(os.path.join(args.repo, "observability/prometheus/rules/slo.yml")))
    runbooks = {" ".join(r["annotations"]["runbook"].split()) for g in rules["groups"] for r in g["rules"]
                if r.get("alert") == "TasklightBalancerAvailabilityBudgetBurn"}
    c.ok(len(runbooks) == 1, f"the balancer alert's rules have {len(runbooks)} different runbooks, expected 1")
    runbook = runbooks.pop() if runbooks else ""
    bad_id, own_id, ok_id = by_name["bad-gateway-with-id"]["id"], by_name["bad-gateway-without-id"]["id"], by_name["ok-with-id-and-trace"]["id"]
    # (query as the runbook writes it, the id put in for <id>, expected number of lines)
    cases = [
        ('{service="nginx"} | json | status >= 500', None, fivexx),
        ('{service="nginx"} | json | request_id="<id>"', bad_id, 1),
        ('{service="nginx"} | json | request_id="<id>"', own_id, 1),
        ('{service="tasklight"} | json | request_id="<id>"', bad_id, 0),
        ('{service="tasklight"} | json | request_id="<id>"', ok_id, None),
    ]
    print("== LogQL of the balancer alert's runbook, over the captured lines")
    for query, rid, want in cases:
        c.ok(query in runbook, f"the runbook no longer says {query}")
        expr = query.replace("<id>", rid) if rid else query
        pipelines, _ = parse_logql(expr)
        n = min(run_pipeline(p, lines) for p in pipelines)
        if want is None:
            c.ok(n >= 1, f"{expr}: {n} lines, expected the instance's")
        else:
            c.ok(n == want, f"{expr}: {n} lines, expected {want}")
        print(f"   {expr}: {n} lines")

    print("== the dashboards' LogQL queries for nginx's lines, over the captured lines")
    one = by_name["bad-gateway-with-trace"]
    line = next(rec for _, rec in nginx_lines if rec.get("request_id") == one["id"])
    nginx_queries = 0
    for kind, source, raw, dash in collect(os.path.join(args.repo, "dashboards")):
        if kind != "logql" or 'service="nginx"' not in raw:
            continue
        nginx_queries += 1
        values, _ = variable_values(dash)
        single = dict(values, level=grafana_regex_escape(line["level"]), request_id=line["request_id"],
                      trace_id=line["trace_id"])
        counts = []
        for vals in (values, single):
            expr, missing = substitute(raw, vals)
            c.ok(not missing, f"{source}: undefined variables {missing}")
            pipelines, _ = parse_logql(expr)
            counts.append(min(run_pipeline(p, lines) for p in pipelines))
        c.ok(counts[0] >= 1 and counts[1] >= 1,
             f"{source}: {counts[0]} lines with every filter at All, {counts[1]} for request {line['request_id']}")
        print(f"   {source}: {counts[0]} lines with every filter at All, {counts[1]} for the 502 {line['request_id']}")
    c.ok(nginx_queries >= 1, "no dashboard queries nginx's lines ({service=\"nginx\"})")
    return report(c, len(sent), expected)


def report(c, n_sent=0, expected=None):
    print(f"== {n_sent} requests sent; answers by status {dict(sorted((expected or {}).items()))} (plus /health)")
    print(f"{c.passed} passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
