"""The results: rows, failures, what may be empty, and the final report."""

import re


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


def print_report(report, prom_rows, logql_rows, prom_counts, logql_counts, n_links):
    """Prints every expression with its result, the failures and the summary; returns the exit code."""
    n_prom, prom_data, prom_empty = prom_counts
    n_logql, logql_data, logql_empty = logql_counts
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
