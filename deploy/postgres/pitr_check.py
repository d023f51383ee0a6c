#!/usr/bin/env python3
"""The writer and the comparison of check-pitr.sh (standard library only).

  pitr_check.py write BASE_URL OUT.jsonl [--threads N]
      Registers a user, logs in, creates a project, then creates tasks in it from N threads
      (POST /api/v1/projects/{id}/tasks) until SIGTERM or SIGINT; each thread finishes the request
      it has in flight, then the writer exits. One JSON line per request, flushed at once:
        {"kind": "task", "id", "title", "project_id", "created_by", "created_at", "version",
         "sent": epoch seconds just before the request was sent,
         "ack": epoch seconds when the 201 arrived}
        {"kind": "failed", "title", "sent", "at", "error"}    (anything but a 201)
      The first line is {"kind": "setup", "user_id", "project_id"}.

  pitr_check.py compare WRITES.jsonl ROWS.json --target EPOCH|latest [--backup-end EPOCH]
      ROWS.json: the restored cluster's tasks, a JSON array of {id, title, project_id, created_by,
      created_at, version}. Checks them against the writes, row for row, by this rule:
        - a write acknowledged before the target (ack < T) must be there, with the same id,
          title, project, creator, creation time and version;
        - a write sent at or after the target (sent >= T) must not be there;
        - a write in flight at the target (sent < T <= ack) may be either; if there, it must be
          equal, and how many are there and how many not is reported;
        - no other row may be there, and no request may have failed (a failed request's row
          could be either, so the check would be ambiguous).
      With --target latest every acknowledged write must be there and nothing else.
      Why the rule holds: the service answers 201 only after its transaction committed, so a
      write acknowledged before T committed before T; a request sent after T commits after T.
      recovery_target_time compares T with commit timestamps (the same machine clock) and keeps
      commits at or before T.
"""

import argparse
import datetime
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid


def call(base, path, body, token=None, timeout=15):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        arrived = time.time()
        return resp.status, arrived, json.loads(resp.read())


def write(args):
    base = args.base_url.rstrip("/") + "/api/v1"
    email = "pitr-%s@example.com" % uuid.uuid4().hex[:12]
    password = "point-in-time-recovery"
    status, _, user = call(base, "/auth/register", {"email": email, "password": password, "display_name": "PITR writer"})
    if status != 201:
        sys.exit("register: HTTP %d" % status)
    _, _, login = call(base, "/auth/login", {"email": email, "password": password})
    token = login["access_token"]
    status, _, project = call(base, "/projects", {"name": "Point-in-time recovery"}, token)
    if status != 201:
        sys.exit("create project: HTTP %d" % status)

    out = open(args.out, "a", encoding="utf-8")
    lock = threading.Lock()

    def record(obj):
        line = json.dumps(obj, ensure_ascii=False)
        with lock:
            out.write(line + "\n")
            out.flush()

    record({"kind": "setup", "user_id": user["id"], "project_id": project["id"]})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def worker(w):
        n = 0
        path = "/projects/%s/tasks" % project["id"]
        while not stop.is_set():
            n += 1
            # Quotes, a backslash and non-ASCII letters, so that the comparison is of exact text.
            title = "pitr %d-%d \u00ab'quoted' \"twice\" \\ \u00e9t\u00e9\u00bb" % (w, n)
            sent = time.time()
            try:
                status, ack, task = call(base, path, {"title": title}, token)
                if status != 201:
                    raise RuntimeError("HTTP %d" % status)
            except Exception as exc:  # noqa: BLE001: every failure is recorded, the check fails on it
                detail = exc.code if isinstance(exc, urllib.error.HTTPError) else exc
                record({"kind": "failed", "title": title, "sent": sent, "at": time.time(), "error": str(detail)})
                time.sleep(0.05)
                continue
            record({"kind": "task", "id": task["id"], "title": task["title"], "project_id": task["project_id"],
                    "created_by": task["created_by"], "created_at": task["created_at"], "version": task["version"],
                    "sent": sent, "ack": ack})

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(1, args.threads + 1)]
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(0.2)
    for t in threads:
        t.join(30)
    out.close()


def parse_time(value):
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def same(write_rec, row):
    """The fields that differ between what the API acknowledged and the restored row."""
    diffs = []
    for field in ("id", "title", "project_id", "created_by", "version"):
        if write_rec[field] != row[field]:
            diffs.append("%s %r != %r" % (field, write_rec[field], row[field]))
    if parse_time(write_rec["created_at"]) != parse_time(row["created_at"]):
        diffs.append("created_at %s != %s" % (write_rec["created_at"], row["created_at"]))
    return diffs


def compare(args):
    writes, failed = [], []
    with open(args.writes, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec["kind"] == "task":
                writes.append(rec)
            elif rec["kind"] == "failed":
                failed.append(rec)
    with open(args.rows, encoding="utf-8") as f:
        rows = {r["id"]: r for r in json.load(f)}
    by_id = {w["id"]: w for w in writes}
    problems = []
    if failed:
        problems.append("%d request(s) of the writer failed, e.g. %s" % (len(failed), failed[0]))
    if len(by_id) != len(writes):
        problems.append("the service acknowledged one id twice")

    latest = args.target == "latest"
    target = None if latest else float(args.target)
    must = [w for w in writes if latest or w["ack"] < target]
    must_not = [] if latest else [w for w in writes if w["sent"] >= target]
    in_flight = [] if latest else [w for w in writes if w["sent"] < target <= w["ack"]]

    missing = [w for w in must if w["id"] not in rows]
    changed = [(w, same(w, rows[w["id"]])) for w in must + in_flight if w["id"] in rows]
    changed = [(w, d) for w, d in changed if d]
    present_after = [w for w in must_not if w["id"] in rows]
    unknown = [r for i, r in rows.items() if i not in by_id]
    flight_in = sum(1 for w in in_flight if w["id"] in rows)

    for w in missing[:5]:
        problems.append("missing: %s %r acknowledged at %.6f" % (w["id"], w["title"], w["ack"]))
    for w, d in changed[:5]:
        problems.append("different: %s: %s" % (w["id"], "; ".join(d)))
    for w in present_after[:5]:
        problems.append("present although sent after the target: %s %r sent at %.6f" % (w["id"], w["title"], w["sent"]))
    for r in unknown[:5]:
        problems.append("a row nobody acknowledged: %s %r" % (r["id"], r["title"]))
    if missing:
        problems.append("%d acknowledged write(s) missing in all" % len(missing))
    if changed:
        problems.append("%d row(s) differ in all" % len(changed))
    if present_after:
        problems.append("%d write(s) sent after the target are there in all" % len(present_after))
    if unknown:
        problems.append("%d unknown row(s) in all" % len(unknown))

    if latest:
        print("acknowledged writes: %d, all present row for row: %s; rows restored: %d; failed requests: %d"
              % (len(writes), "yes" if not missing and not changed else "NO", len(rows), len(failed)))
    else:
        from_archive = None
        if args.backup_end is not None:
            from_archive = sum(1 for w in must if w["sent"] > float(args.backup_end))
        print("acknowledged writes: %d in all; rows restored: %d; failed requests: %d" % (len(writes), len(rows), len(failed)))
        changed_ids = {w["id"] for w, _ in changed}
        must_ok = sum(1 for w in must if w["id"] in rows and w["id"] not in changed_ids)
        print("  acknowledged before T (must be there): %d, present and equal: %d%s"
              % (len(must), must_ok,
                 "" if from_archive is None else " (%d of them sent after the base backup ended: replayed from the WAL archive)" % from_archive))
        print("  sent at or after T (must not be there): %d, absent: %d" % (len(must_not), len(must_not) - len(present_after)))
        print("  in flight at T (either): %d, present: %d, absent: %d" % (len(in_flight), flight_in, len(in_flight) - flight_in))
        if not must_not:
            problems.append("no write was sent after the target: the check proves nothing")
        if from_archive == 0:
            problems.append("no write between the backup and the target: the WAL archive was not exercised")
    for p in problems:
        print("PROBLEM: " + p)
    sys.exit(1 if problems else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("base_url")
    w.add_argument("out")
    w.add_argument("--threads", type=int, default=4)
    c = sub.add_parser("compare")
    c.add_argument("writes")
    c.add_argument("rows")
    c.add_argument("--target", required=True)
    c.add_argument("--backup-end")
    args = parser.parse_args()
    (write if args.cmd == "write" else compare)(args)


if __name__ == "__main__":
    main()
