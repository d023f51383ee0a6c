#!/usr/bin/env python3
"""Checks the Grafana dashboards (dashboards/*.json) and the Prometheus rules against real data.

Run by observability/check-dashboards.sh, which starts two tasklight instances, an nginx in front
of them, exporters for PostgreSQL, Redis and nginx, and a Prometheus scraping the instances and
the exporters, then calls this script with their addresses. This script:

  1. waits until Prometheus scrapes both instances and every dependency's exporter (--dependencies),
     and each exporter reaches what it watches (pg_up, redis_up, nginx_up),
  2. drives bounded traffic at both instances, a third of it through nginx (--nginx) (register,
     login, projects, tasks, reads, updates, 404s, 401s, login failures, 412s, and anonymous
     requests until they are rate-limited: 429), and waits until Prometheus has scraped it,
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

The work is split among the modules next to this file: traffic.py (the traffic), dashboards.py (the
dashboards' JSON, variables, expressions), promql.py (PromQL through Prometheus, with
ALLOWED_EMPTY_PROMQL), logql.py (the LogQL parser and evaluator), logql_check.py (the LogQL checks,
with ALLOWED_EMPTY_LOGQL), report.py (results and the final report) and api.py (HTTP).
"""

import argparse
import sys
import time

from api import prom_get, prom_query
from dashboards import check_links, collect, structural_checks
from logql import LogQLError, flatten, parse_logql
from logql_check import check_logql, read_lines
from promql import check_promql, loaded_rules, summarize_result
from report import Report, print_report
from traffic import drive_traffic


# What each dependency's exporter says about reaching what it watches (1: reached).
DEPENDENCY_UP = {"postgres": "pg_up", "redis": "redis_up", "nginx": "nginx_up"}


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


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = fn()
        if ok:
            return detail
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}: {detail}")
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--api", required=True, help="comma-separated base URLs of the instances' public listeners")
    ap.add_argument("--nginx", help="base URL of an nginx in front of the instances: a share of the traffic goes through it")
    ap.add_argument("--dependencies", default="",
                    help="comma-separated Prometheus jobs of dependency exporters (postgres, redis, nginx) to wait for")
    ap.add_argument("--logs", required=True, help="comma-separated files holding the instances' stdout")
    ap.add_argument("--dashboards", required=True)
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--traffic-seconds", type=float, default=12)
    args = ap.parse_args()
    prom = args.prometheus.rstrip("/")
    apis = [a.rstrip("/") for a in args.api.split(",")]
    if args.nginx:
        # Round robin over the instances and nginx: a third of the requests pass through nginx.
        apis.append(args.nginx.rstrip("/"))
    dependencies = [d for d in args.dependencies.split(",") if d]
    report = Report()

    def instances_up():
        _, doc = prom_query(prom, 'count(up{job="tasklight"} == 1)')
        res = (doc.get("data") or {}).get("result") or []
        n = int(float(res[0]["value"][1])) if res else 0
        return n == args.instances, f"{n} of {args.instances} targets up"

    print(f"== waiting for Prometheus to scrape {args.instances} instances")
    wait_for("targets up", instances_up, 30)

    def dependencies_up():
        missing = []
        for job in dependencies:
            reach = DEPENDENCY_UP.get(job)
            for expr in [f'up{{job="{job}"}}'] + ([f'{reach}{{job="{job}"}}'] if reach else []):
                _, doc = prom_query(prom, f"min({expr}) == 1")
                if not (doc.get("data") or {}).get("result"):
                    missing.append(expr)
        return not missing, f"not 1 yet: {', '.join(missing)}"

    if dependencies:
        print(f"== waiting for the exporters of {', '.join(dependencies)}")
        wait_for("the exporters", dependencies_up, 30)

    print(f"== driving traffic for {args.traffic_seconds:.0f}s")
    started = time.monotonic()
    traffic = drive_traffic(apis, args.traffic_seconds)
    print(f"   {traffic.requests} requests in {time.monotonic() - started:.1f}s, statuses {dict(sorted(traffic.statuses.items()))}")
    print(f"   requests by base URL: {', '.join(f'{b} {n}' for b, n in sorted(traffic.per_base.items()))}")

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

    return print_report(report, prom_rows, logql_rows, (n_prom, prom_data, prom_empty),
                        (n_logql, logql_data, logql_empty), n_links)


if __name__ == "__main__":
    sys.exit(main())
