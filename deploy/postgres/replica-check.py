#!/usr/bin/env python3
"""The HTTP side of check-replica.sh: users, writes, reads and metrics of two Tasklight instances
(A and B) sharing a PostgreSQL primary, a streaming replica (DATABASE_READ_URL) and Redis.

Only the standard library (urllib). Each subcommand appends its checks (name, ok, detail) and its
figures to the results file (JSON); `summary` prints them all and exits 1 when any check failed.

  setup     user X (owner of a project) and user Y (a member of it who never writes afterwards)
  rw        (a) read-your-writes across instances: X writes on A and at once reads on B: ROUNDS
            tasks (the project's task list and "my tasks"), 5 comments (the task's comments) and
            5 projects (the project list);
            (b) staleness: X writes on A, Y (who has not written) reads on B at once, then polls
            until the task is there; (c) the lag gauge and readiness while idle
  sample    (d) the lag gauge of A and B (and pg_stat_replication.replay_lag) every second
  lagging   (e) instances with TASKLIGHT_READ_MAX_LAG_MS=500: Y's read right after X's write sees it
  down      (f) the replica stopped: reads answer 200 and fresh, readiness 200 with the replica down
  summary   every check and figure; exit 1 on any failed check
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

PASSWORD = "replica-check-password-0123"
RESULTS = None  # path of the results file


# ---------------------------------------------------------------------------------------------------
# Results.


def load_results():
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            return json.load(f)
    return {"checks": [], "figures": {}}


def save_results(results):
    tmp = RESULTS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, RESULTS)


def check(results, name, ok, detail=""):
    results["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def note(results, text):
    """An observation that is not one of the checks (not a failure)."""
    results.setdefault("notes", []).append(text)
    print(f"  note {text}", flush=True)


def figure(results, key, value):
    results["figures"][key] = value


def progress(text):
    print(f"[replica-check {time.strftime('%H:%M:%S', time.gmtime())}] {text}", flush=True)


# ---------------------------------------------------------------------------------------------------
# HTTP.


class Answer:
    def __init__(self, method, url, status, body, raw, millis):
        self.method, self.url, self.status, self.body, self.raw, self.millis = method, url, status, body, raw, millis

    def describe(self):
        text = self.raw if isinstance(self.raw, str) else repr(self.raw)
        return f"{self.method} {self.url} -> {self.status} in {self.millis:.0f} ms: {text[:400]}"


def call(method, url, token=None, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("User-Agent", "tasklight-replica-check")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return Answer(method, url, None, None, f"no answer: {e}", (time.monotonic() - started) * 1000)
    millis = (time.monotonic() - started) * 1000
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return Answer(method, url, status, parsed, text, millis)


def must(answer, status):
    if answer.status != status:
        raise SystemExit(f"replica-check: expected {status}: {answer.describe()}")
    return answer.body


def api(base):
    return base.rstrip("/") + "/api/v1"


def create_task(base, token, project, title):
    return call("POST", f"{api(base)}/projects/{project}/tasks", token, {"title": title})


def list_project_tasks(base, token, project):
    return call("GET", f"{api(base)}/projects/{project}/tasks?order=desc&limit=100", token)


def list_my_tasks(base, token):
    return call("GET", f"{api(base)}/tasks?relation=created&order=desc&limit=100", token)


def list_projects(base, token):
    return call("GET", f"{api(base)}/projects?limit=100", token)


def ids(answer):
    if answer.status != 200 or not isinstance(answer.body, dict):
        return None
    return {item.get("id") for item in answer.body.get("items", [])}


# ---------------------------------------------------------------------------------------------------
# Metrics and readiness (admin listener).

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(admin):
    """[(name, {label: value}, float)] from ADMIN/metrics, or None when it does not answer."""
    answer = call("GET", f"{admin}/metrics", timeout=5)
    if answer.status != 200:
        return None
    out = []
    for line in answer.raw.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), value))
    return out


def metric_sum(samples, name, **labels):
    """The sum of NAME's samples whose labels include LABELS; None when there is none."""
    found = [v for n, l, v in samples or [] if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]
    return sum(found) if found else None


def reads(samples):
    """{(target, reason): count} of tasklight_db_reads_total."""
    out = {}
    for n, l, v in samples or []:
        if n == "tasklight_db_reads_total":
            key = (l.get("target"), l.get("reason"))
            out[key] = out.get(key, 0) + v
    return out


def reads_delta(before, after):
    keys = set(before) | set(after)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) - before.get(k, 0)}


def fmt_reads(delta):
    if not delta:
        return "none"
    return ", ".join(f"{t}/{r}: {int(v)}" for (t, r), v in sorted(delta.items(), key=lambda kv: str(kv[0])))


def lag_gauge(samples):
    return metric_sum(samples, "tasklight_db_replica_lag_seconds")


def replica_up(samples):
    return metric_sum(samples, "tasklight_db_replica_up")


def ready(admin):
    return call("GET", f"{admin}/health/ready", timeout=5)


def replica_check(answer):
    if not isinstance(answer.body, dict):
        return None
    return (answer.body.get("checks") or {}).get("replica")


# ---------------------------------------------------------------------------------------------------
# Subcommands.


def cmd_setup(args):
    results = load_results()
    state = {"project_titles": []}
    for who in ("x", "y"):
        email = f"replica-{who}-{uuid.uuid4().hex[:12]}@example.com"
        created = must(call("POST", f"{api(args.a)}/auth/register", None,
                            {"email": email, "password": PASSWORD, "display_name": f"Replica {who.upper()}"}), 201)
        tokens = must(call("POST", f"{api(args.a)}/auth/login", None, {"email": email, "password": PASSWORD}), 200)
        state[who] = {"email": email, "id": created["id"], "token": tokens["access_token"]}
    x, y = state["x"]["token"], state["y"]["token"]
    project = must(call("POST", f"{api(args.a)}/projects", x, {"name": "Replica check"}), 201)
    state["project"] = project["id"]
    # Y becomes a member by the owner's write (tests/api/helpers.rs add_member): Y itself writes nothing.
    must(call("PUT", f"{api(args.a)}/projects/{project['id']}/members/{state['y']['id']}", x, {"role": "member"}), 200)
    first = must(create_task(args.a, x, project["id"], "First task"), 201)
    # Y's first read, through the primary, proves the membership before any replica is involved.
    seen = ids(call("GET", f"{api(args.a)}/projects/{project['id']}/tasks", y))
    if seen is None or first["id"] not in seen:
        raise SystemExit("replica-check: Y cannot list the project's tasks on A")
    # Y's registration and login were Y's own writes (a refresh token): `rw` waits until the
    # replica has replayed them before Y's reads count as those of a user who has not written.
    state["setup_done"] = time.time()
    with open(args.state, "w") as f:
        json.dump(state, f)
    progress(f"users X {state['x']['email']} (owner) and Y {state['y']['email']} (member) of project {project['id']}")
    save_results(results)


def read_state(args):
    with open(args.state) as f:
        return json.load(f)


def wait_visible(base, token, project, task_id, written_at, limit_s):
    """Polls the project's task list every 50 ms; seconds from written_at until task_id is there,
    or None after limit_s; with the last answer."""
    deadline = written_at + limit_s
    while True:
        answer = list_project_tasks(base, token, project)
        seen = ids(answer)
        if seen is not None and task_id in seen:
            return time.monotonic() - written_at, answer
        if time.monotonic() >= deadline:
            return None, answer
        time.sleep(0.05)


def cmd_rw(args):
    results = load_results()
    state = read_state(args)
    x, y, project = state["x"]["token"], state["y"]["token"], state["project"]

    # (a) Read-your-writes across instances.
    progress(f"(a) read-your-writes: X writes on A, reads on B at once, {args.rounds} rounds")
    before_b = reads(metrics(args.admin_b))
    failures, failed_rounds, read_ms = [], set(), []
    for i in range(args.rounds):
        created = create_task(args.a, x, project, f"ryw round {i}")
        if created.status != 201:
            failures.append(f"task round {i}: write failed: {created.describe()}")
            failed_rounds.add(("task", i))
            continue
        tid = created.body["id"]
        for what, answer in (("project tasks", list_project_tasks(args.b, x, project)),
                             ("my tasks", list_my_tasks(args.b, x))):
            read_ms.append(answer.millis)
            seen = ids(answer)
            if seen is None or tid not in seen:
                failures.append(f"task round {i} ({what}): task {tid} written on A not in B's answer: {answer.describe()}")
                failed_rounds.add(("task", i))
    comment_task = create_task(args.a, x, project, "ryw comments")
    if comment_task.status != 201:
        raise SystemExit(f"replica-check: {comment_task.describe()}")
    for i in range(args.comment_rounds):
        created = call("POST", f"{api(args.a)}/tasks/{comment_task.body['id']}/comments", x, {"body": f"comment {i}"})
        if created.status != 201:
            failures.append(f"comment round {i}: write failed: {created.describe()}")
            failed_rounds.add(("comment", i))
            continue
        answer = call("GET", f"{api(args.b)}/tasks/{comment_task.body['id']}/comments?limit=100", x)
        read_ms.append(answer.millis)
        seen = ids(answer)
        if seen is None or created.body["id"] not in seen:
            failures.append(f"comment round {i}: comment {created.body['id']} written on A not in B's list: "
                            f"{answer.describe()}")
            failed_rounds.add(("comment", i))
    for i in range(args.project_rounds):
        created = call("POST", f"{api(args.a)}/projects", x, {"name": f"Replica check {i}"})
        if created.status != 201:
            failures.append(f"project round {i}: write failed: {created.describe()}")
            failed_rounds.add(("project", i))
            continue
        answer = list_projects(args.b, x)
        read_ms.append(answer.millis)
        seen = ids(answer)
        if seen is None or created.body["id"] not in seen:
            failures.append(f"project round {i}: project {created.body['id']} written on A not in B's list: "
                            f"{answer.describe()}")
            failed_rounds.add(("project", i))
    delta_b = reads_delta(before_b, reads(metrics(args.admin_b)))
    all_rounds = args.rounds + args.comment_rounds + args.project_rounds
    ok_rounds = all_rounds - len(failed_rounds)
    for f in failures[:10]:
        print(f"    {f}")
    figure(results, "ryw_rounds", f"{ok_rounds}/{all_rounds}")
    check(results, "(a) read-your-writes across instances", not failures,
          f"{ok_rounds}/{all_rounds} rounds fresh ({args.rounds} task rounds of 2 reads: the project's tasks and "
          f"my tasks; {args.comment_rounds} comment rounds; {args.project_rounds} project rounds); "
          f"B's reads: {fmt_reads(delta_b)}; read latency median {statistics.median(read_ms) if read_ms else 0:.1f} ms")
    # The project's task list and a task's comments are routed (the service's README); each of
    # X's reads of them right after X's write must have gone to the primary for that reason.
    routed = args.rounds + args.comment_rounds
    own = delta_b.get(("primary", "own_write"), 0)
    check(results, "(a) B sent X's task-list and comment reads to the primary (reason own_write)",
          own >= routed, f"{int(own)} of {routed} reads counted primary/own_write")
    # "My tasks" and the project list stay on the primary (README, "Read replicas": a member
    # removed on one instance loses them on every instance at once): a read of them by Y is
    # answered and counted as no stale-tolerant read at all.
    for what, path in (("GET /api/v1/tasks (my tasks)", "/tasks"), ("GET /api/v1/projects", "/projects")):
        before = reads(metrics(args.admin_b))
        answer = call("GET", f"{api(args.b)}{path}", y)
        delta = reads_delta(before, reads(metrics(args.admin_b)))
        check(results, f"(a) {what} by Y on B stays on the primary",
              answer.status == 200 and not delta, f"{answer.status}; reads counted: {fmt_reads(delta)}")

    # (b) Staleness is real.
    # Y's last own write (its login, in setup) must be replayed, and the instances must have seen
    # that (they look every 250 ms): the apply delay and a second after setup.
    wait = state["setup_done"] + args.apply_delay + 1.0 - time.time()
    if wait > 0:
        time.sleep(wait)
    progress(f"(b) staleness: X writes on A, Y (no writes of its own) reads on B at once, {args.stale_rounds} rounds")
    before_b = reads(metrics(args.admin_b))
    stale, visible_after, never = 0, [], []
    for i in range(args.stale_rounds):
        created = create_task(args.a, x, project, f"stale round {i}")
        written_at = time.monotonic()
        if created.status != 201:
            never.append(f"round {i}: write failed: {created.describe()}")
            continue
        tid = created.body["id"]
        first = list_project_tasks(args.b, y, project)
        seen = ids(first)
        if first.status != 200:
            never.append(f"round {i}: Y's read failed: {first.describe()}")
            continue
        if tid not in seen:
            stale += 1
        took, last = wait_visible(args.b, y, project, tid, written_at, args.visible_within)
        if took is None:
            never.append(f"round {i}: task {tid} not visible to Y on B within {args.visible_within} s: {last.describe()}")
        else:
            visible_after.append(took)
        print(f"    round {i}: Y's first read {'stale' if tid not in seen else 'fresh'}, "
              f"visible after {'-' if took is None else f'{took:.2f} s'}")
    delta_b = reads_delta(before_b, reads(metrics(args.admin_b)))
    for n in never:
        print(f"    {n}")
    figure(results, "stale_reads", f"{stale}/{args.stale_rounds}")
    if visible_after:
        figure(results, "stale_visible_after_s", {"max": round(max(visible_after), 3),
                                                   "median": round(statistics.median(visible_after), 3)})
    check(results, "(b) a member's read right after another's write can be stale", stale >= 1,
          f"{stale} of {args.stale_rounds} first reads did not have the task yet")
    check(results, f"(b) the task is visible to Y within {args.visible_within} s", not never,
          f"visible after {', '.join(f'{t:.2f}' for t in visible_after)} s")
    check(results, "(b) tasklight_db_reads_total{target=\"replica\"} grew on B",
          sum(v for (t, _), v in delta_b.items() if t == "replica") > 0, f"B's reads: {fmt_reads(delta_b)}")

    # (c) Idle with the apply delay.
    progress(f"(c) idle {args.idle} s, then the lag gauge and readiness of A and B")
    time.sleep(args.idle)
    for name, admin in (("A", args.admin_a), ("B", args.admin_b)):
        samples = metrics(admin)
        lag = lag_gauge(samples)
        up = replica_up(samples)
        check(results, f"(c) {name}: tasklight_db_replica_lag_seconds between 0 and 10",
              lag is not None and 0 <= lag <= 10, f"{lag}")
        check(results, f"(c) {name}: tasklight_db_replica_up is 1", up == 1, f"{up}")
        answer = ready(admin)
        rep = replica_check(answer)
        check(results, f"(c) {name}: readiness 200 with checks.replica.status up",
              answer.status == 200 and isinstance(rep, dict) and rep.get("status") == "up",
              f"{answer.status} checks.replica={json.dumps(rep)}")
        check(results, f"(c) {name}: readiness checks.replica has lag_ms",
              isinstance(rep, dict) and isinstance(rep.get("lag_ms"), (int, float)), json.dumps(rep))
        figure(results, f"idle_lag_s_{name}", lag)
    save_results(results)


def pg_replay_lag(args):
    """pg_stat_replication.replay_lag (seconds) on the primary, or None."""
    if not args.psql:
        return None
    try:
        out = subprocess.run(
            [args.psql, "-h", "127.0.0.1", "-p", str(args.primary_port), "-U", "postgres", "-d", "postgres",
             "-X", "-A", "-t", "-q", "-c",
             "SELECT coalesce(extract(epoch FROM replay_lag), 0) FROM pg_stat_replication "
             "WHERE application_name = 'tasklight_replica'"],
            capture_output=True, text=True, timeout=5).stdout.strip()
        return float(out) if out else None
    except (subprocess.SubprocessError, ValueError):
        return None


def cmd_sample(args):
    results = load_results()
    progress(f"(d) sampling the lag gauge of A and B every second for {args.seconds} s")
    gauges, pg = [], []
    before = {name: reads(metrics(admin)) for name, admin in (("A", args.admin_a), ("B", args.admin_b))}
    started = time.monotonic()
    for i in range(args.seconds):
        tick = started + i
        time.sleep(max(0.0, tick - time.monotonic()))
        row = []
        for name, admin in (("A", args.admin_a), ("B", args.admin_b)):
            lag = lag_gauge(metrics(admin))
            row.append(f"{name} {'-' if lag is None else f'{lag:.3f}'}")
            if lag is not None:
                gauges.append(lag)
        p = pg_replay_lag(args)
        if p is not None:
            pg.append(p)
        print(f"    t={i + 1:2d}s lag gauge {', '.join(row)}; pg replay_lag {'-' if p is None else f'{p:.3f}'}",
              flush=True)
    routed = {}
    for name, admin in (("A", args.admin_a), ("B", args.admin_b)):
        delta = reads_delta(before[name], reads(metrics(admin)))
        routed[name] = {f"{t}/{r}": int(v) for (t, r), v in delta.items()}
        print(f"    {name}'s reads during the sampling: {fmt_reads(delta)}")
    figure(results, "k6_reads", routed)
    if gauges:
        figure(results, "k6_lag_gauge_s", {"max": round(max(gauges), 3), "median": round(statistics.median(gauges), 3),
                                            "samples": len(gauges)})
    if gauges and pg and max(gauges) > max(pg) + 1.0:
        note(results, f"under k6 the lag gauge peaked at {max(gauges):.2f} s while pg_stat_replication.replay_lag "
                      f"peaked at {max(pg):.2f} s: after an idle spell the gauge (the age of the last replayed "
                      "transaction) counts the idle time until the next commit is replayed")
    if pg:
        figure(results, "k6_pg_replay_lag_s", {"max": round(max(pg), 3), "median": round(statistics.median(pg), 3),
                                                "samples": len(pg)})
    check(results, "(d) the lag gauge answered every second under load", len(gauges) >= 2 * args.seconds - 2,
          f"{len(gauges)} samples of {2 * args.seconds}; max {max(gauges) if gauges else '-'} s, "
          f"median {statistics.median(gauges) if gauges else '-'} s")
    save_results(results)


def cmd_k6(args):
    """Reads the k6 summaries (loadtests/k6/lib/setup.js summaryHandler): requests and failures."""
    results = load_results()
    total = failed = 0
    rows = []
    for path in args.summaries:
        try:
            with open(path) as f:
                s = json.load(f)["tasklight"]
        except (OSError, ValueError, KeyError) as e:
            check(results, f"(d) k6 summary {path}", False, repr(e))
            continue
        requests, fails = int(s.get("requests") or 0), int(s.get("failed") or 0)
        total, failed = total + requests, failed + fails
        rows.append(f"{s.get('base_url')}: {requests} requests ({s.get('requests_per_s', 0):.0f}/s), {fails} failed, "
                    f"checks {s.get('checks_rate')}, p95 {((s.get('latency_ms') or {}).get('p95') or 0):.1f} ms")
    for r in rows:
        print(f"    {r}")
    figure(results, "k6_requests", total)
    figure(results, "k6_failed", failed)
    check(results, "(d) the k6 mix ran against A and B", total > 0 and len(rows) == len(args.summaries),
          f"{total} requests, {failed} failed")
    save_results(results)


def cmd_lagging(args):
    results = load_results()
    state = read_state(args)
    x, y, project = state["x"]["token"], state["y"]["token"], state["project"]
    progress("(e) TASKLIGHT_READ_MAX_LAG_MS=500: X writes until B's lag gauge is above 0.5 s")
    deadline = time.monotonic() + args.warmup_limit
    seen_lags = []
    while True:
        create_task(args.a, x, project, "lag warm-up")
        lag = lag_gauge(metrics(args.admin_b))
        seen_lags.append(lag)
        if lag is not None and lag > 0.5 or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    lag_note = f"B's gauge went {', '.join('-' if v is None else f'{v:.2f}' for v in seen_lags[-8:])}"
    if not check(results, "(e) B's lag gauge above TASKLIGHT_READ_MAX_LAG_MS (0.5 s) while X writes",
                 lag is not None and lag > 0.5, lag_note):
        pass  # the rounds still run: what they see is worth reporting
    before_b = reads(metrics(args.admin_b))
    failures = []
    for i in range(args.rounds):
        created = create_task(args.a, x, project, f"lagging round {i}")
        if created.status != 201:
            failures.append(f"round {i}: write failed: {created.describe()}")
            continue
        answer = list_project_tasks(args.b, y, project)
        seen = ids(answer)
        if seen is None or created.body["id"] not in seen:
            failures.append(f"round {i}: Y's read on B right after X's write on A lacks the task: {answer.describe()}")
    after_samples = metrics(args.admin_b)
    delta_b = reads_delta(before_b, reads(after_samples))
    for f in failures[:10]:
        print(f"    {f}")
    figure(results, "lagging_rounds", f"{args.rounds - len(failures)}/{args.rounds}")
    check(results, "(e) with the replica too far behind, Y's reads on B are fresh", not failures,
          f"{args.rounds - len(failures)}/{args.rounds} fresh; gauge now {lag_gauge(after_samples)}")
    lagging = delta_b.get(("primary", "lagging"), 0)
    check(results, "(e) B counted them primary/lagging", lagging >= args.rounds,
          f"{int(lagging)} of {args.rounds}; B's reads: {fmt_reads(delta_b)}")
    save_results(results)


def cmd_down(args):
    results = load_results()
    state = read_state(args)
    x, y, project = state["x"]["token"], state["y"]["token"], state["project"]
    progress(f"(f) replica stopped: X writes on A, Y reads on B at once, {args.rounds} rounds")
    before_b = reads(metrics(args.admin_b))
    failures, millis = [], []

    reads_made = [0]

    def rounds(n, label, readers):
        for i in range(n):
            created = create_task(args.a, x, project, f"down {label} {i}")
            if created.status != 201:
                failures.append(f"{label} {i}: write failed: {created.describe()}")
                continue
            for who, token in readers:
                reads_made[0] += 1
                answer = list_project_tasks(args.b, token, project)
                millis.append(answer.millis)
                seen = ids(answer)
                if seen is None or created.body["id"] not in seen:
                    failures.append(f"{label} {i}: {who}'s read on B: {answer.describe()}")

    rounds(args.rounds, "at once", (("Y", y), ("X", x)))
    # Until the instances notice (probe or failed query): replica_up 0 on both.
    deadline = time.monotonic() + args.notice_limit
    while True:
        ups = {name: replica_up(metrics(admin)) for name, admin in (("A", args.admin_a), ("B", args.admin_b))}
        if all(v == 0 for v in ups.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    for name, v in ups.items():
        check(results, f"(f) {name}: tasklight_db_replica_up 0 within {args.notice_limit} s", v == 0, f"{v}")
    mid_b = reads(metrics(args.admin_b))
    # Y's reads only: X's own fresh write could as well be counted own_write.
    rounds(3, "noticed", (("Y", y),))
    after_b = reads(metrics(args.admin_b))
    for f in failures[:10]:
        print(f"    {f}")
    made = reads_made[0]
    figure(results, "down_reads", f"{made - len(failures)}/{made} fresh, slowest {max(millis) if millis else 0:.0f} ms")
    check(results, "(f) with the replica down, reads answer 200 and fresh", not failures,
          f"{made - len(failures)}/{made} reads fresh, slowest {max(millis) if millis else 0:.0f} ms; "
          f"B's reads: {fmt_reads(reads_delta(before_b, after_b))}")
    down = reads_delta(mid_b, after_b).get(("primary", "down"), 0)
    check(results, "(f) B counted Y's reads primary/down", down >= 3,
          f"{int(down)} of Y's 3 reads after the replica was seen down; {fmt_reads(reads_delta(mid_b, after_b))}")
    for name, admin in (("A", args.admin_a), ("B", args.admin_b)):
        answer = ready(admin)
        rep = replica_check(answer)
        check(results, f"(f) {name}: readiness 200 with checks.replica.status down",
              answer.status == 200 and isinstance(rep, dict) and rep.get("status") == "down",
              f"{answer.status} status={(answer.body or {}).get('status') if isinstance(answer.body, dict) else None} "
              f"checks.replica={json.dumps(rep)[:300]}")
    save_results(results)


def cmd_summary(args):
    results = load_results()
    checks = results["checks"]
    failed = [c for c in checks if not c["ok"]]
    print(f"== checks: {len(checks) - len(failed)} passed, {len(failed)} failed")
    for c in failed:
        print(f"   FAIL {c['name']}: {c['detail']}")
    for n in results.get("notes", []):
        print(f"   note {n}")
    f = results["figures"]
    print("== figures")
    for key in sorted(f):
        print(f"   {key}: {json.dumps(f[key])}")
    return 1 if failed or not checks else 0


def main():
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True)
    p.add_argument("--state")
    p.add_argument("--a", help="instance A's API origin")
    p.add_argument("--b", help="instance B's API origin")
    p.add_argument("--admin-a")
    p.add_argument("--admin-b")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup")
    rw = sub.add_parser("rw")
    rw.add_argument("--rounds", type=int, default=20)
    rw.add_argument("--comment-rounds", type=int, default=5)
    rw.add_argument("--project-rounds", type=int, default=5)
    rw.add_argument("--stale-rounds", type=int, default=5)
    rw.add_argument("--visible-within", type=float, default=5.0)
    rw.add_argument("--idle", type=float, default=2.0)
    rw.add_argument("--apply-delay", type=float, default=1.5, help="the replica's recovery_min_apply_delay, seconds")
    s = sub.add_parser("sample")
    s.add_argument("--seconds", type=int, default=20)
    s.add_argument("--psql")
    s.add_argument("--primary-port", type=int)
    k = sub.add_parser("k6")
    k.add_argument("summaries", nargs="+")
    lg = sub.add_parser("lagging")
    lg.add_argument("--rounds", type=int, default=5)
    lg.add_argument("--warmup-limit", type=float, default=10.0)
    d = sub.add_parser("down")
    d.add_argument("--rounds", type=int, default=5)
    d.add_argument("--notice-limit", type=float, default=15.0)
    sub.add_parser("summary")
    args = p.parse_args()
    RESULTS = args.results
    handler = {"setup": cmd_setup, "rw": cmd_rw, "sample": cmd_sample, "k6": cmd_k6, "lagging": cmd_lagging,
               "down": cmd_down, "summary": cmd_summary}[args.cmd]
    return handler(args) or 0


if __name__ == "__main__":
    sys.exit(main())
