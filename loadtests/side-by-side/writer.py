#!/usr/bin/env python3
"""The side-by-side test's own writer: creates tasks through nginx at a steady rate and records the
id of every creation acknowledged with 201, so that run.sh can look each one up in PostgreSQL.

    writer.py BASE_URL OUT_DIR [--rate 20] [--max-seconds 150]

Setup (retried for a few seconds): registers a user, logs in, creates a project; writes
OUT_DIR/writer-project (its id). Then one POST /api/v1/projects/{id}/tasks every 1/rate s, each on
a new connection (no client keep-alive, so a connection nginx closed between two requests cannot
be mistaken for the service failing), with its own X-Request-Id `sbs-writer-<n>`:

  OUT_DIR/writer-acked.txt    one id a line, flushed after each 201 (the body's id)
  OUT_DIR/writer-failed.txt   one line per failure: request id, status or error, body
  OUT_DIR/writer-summary.json {"project_id", "sent", "acknowledged", "failed", "latency_ms": {...}}

It stops when OUT_DIR/writer-stop exists (run.sh makes it once k6 has ended) or after
--max-seconds, and always writes the summary. Only the standard library; only 127.0.0.1.
"""

import argparse
import http.client
import json
import os
import secrets
import sys
import time
import urllib.parse


def call(base, method, path, body=None, token=None, rid=None, timeout=30):
    """One request on a fresh connection: (status, parsed JSON or text)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    headers = {"Accept": "application/json", "Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if rid:
        headers["X-Request-Id"] = rid
    try:
        conn.request(method, "/api/v1" + path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return resp.status, parsed
    finally:
        conn.close()


def setup(base):
    email = f"sbs-writer-{secrets.token_hex(6)}@example.com"
    password = "side-by-side writer password 0123"
    deadline = time.monotonic() + 20
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = call(base, "POST", "/auth/register",
                                {"email": email, "password": password, "display_name": "side-by-side writer"})
            if status not in (201, 409):
                raise RuntimeError(f"register: {status} {body}")
            status, body = call(base, "POST", "/auth/login", {"email": email, "password": password})
            if status != 200:
                raise RuntimeError(f"login: {status} {body}")
            token = body["access_token"]
            status, body = call(base, "POST", "/projects", {"name": "side-by-side writer"}, token=token)
            if status != 201:
                raise RuntimeError(f"create project: {status} {body}")
            return token, body["id"]
        except Exception as e:  # noqa: BLE001 - retried, reported at the end
            last = e
            time.sleep(0.5)
    sys.exit(f"writer: setup failed: {last}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("out_dir")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=150.0)
    args = ap.parse_args()
    base = args.base_url.rstrip("/")
    out = args.out_dir
    token, project = setup(base)
    with open(os.path.join(out, "writer-project"), "w") as f:
        f.write(project + "\n")

    acked_f = open(os.path.join(out, "writer-acked.txt"), "w")
    failed_f = open(os.path.join(out, "writer-failed.txt"), "w")
    stop_file = os.path.join(out, "writer-stop")
    interval = 1.0 / args.rate
    start = time.monotonic()
    next_at = start
    sent = acked = failed = 0
    latencies = []
    while not os.path.exists(stop_file) and time.monotonic() - start < args.max_seconds:
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        next_at += interval
        sent += 1
        rid = f"sbs-writer-{sent}"
        t0 = time.monotonic()
        try:
            status, body = call(base, "POST", f"/projects/{project}/tasks",
                                {"title": f"side-by-side write {sent}", "priority": "medium", "tags": ["sbs"]},
                                token=token, rid=rid)
        except Exception as e:  # noqa: BLE001 - a failure the client sees
            status, body = None, f"{type(e).__name__}: {e}"
        latencies.append((time.monotonic() - t0) * 1000)
        if status == 201 and isinstance(body, dict) and body.get("id"):
            acked += 1
            acked_f.write(body["id"] + "\n")
            acked_f.flush()
        else:
            failed += 1
            failed_f.write(f"{rid} at {time.monotonic() - start:.2f}s: status={status} body={str(body)[:300]}\n")
            failed_f.flush()
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else 0.0

    summary = {
        "project_id": project,
        "sent": sent,
        "acknowledged": acked,
        "failed": failed,
        "seconds": round(time.monotonic() - start, 2),
        "latency_ms": {"p50": round(pct(50), 2), "p99": round(pct(99), 2), "max": round(latencies[-1] if latencies else 0, 2)},
    }
    with open(os.path.join(out, "writer-summary.json"), "w") as f:
        json.dump(summary, f)
        f.write("\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
