"""Many live event streams at once, while writes happen: fan-out latency, completeness and memory.

Registers USERS users (one owner, the rest viewers of the owner's project), opens STREAMS_PER_USER
event streams for each (`GET /api/v1/projects/{id}/events`, through BASE_URL, so nginx spreads them
over the instances), measures the instances' resident memory before and after, then changes a task
WRITES_PER_S times a second for DURATION seconds. Every stream must receive every change (none
lost, in order); the latency of each delivery is the time from the change (the event's `timestamp`)
to its arrival at the client. Prints a JSON summary (and writes it to SUMMARY if given).

Only the Python standard library; only 127.0.0.1 is contacted; every wait is bounded.

    python3 streams.py BASE_URL ADMIN_URL[,ADMIN_URL...] [--users 100] [--streams-per-user 5]
                       [--writes-per-s 10] [--duration 30] [--summary FILE]
"""

import argparse
import asyncio
import datetime
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(method, url, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with OPENER.open(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, err.read()[:300]


def resident_bytes(admin):
    with OPENER.open(f"{admin}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("process_resident_memory_bytes "):
                return float(line.split()[1])
    return 0.0


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Stream:
    def __init__(self, n):
        self.n = n
        self.titles = []
        self.latencies = []
        self.opened = False
        self.error = None


async def follow(stream, base, project, token, stop_at):
    url = urllib.parse.urlsplit(base)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(url.hostname, url.port), 10)
        writer.write((
            f"GET /api/v1/projects/{project}/events HTTP/1.0\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        if b" 200 " not in status:
            stream.error = status.decode(errors="replace").strip()
            return
        while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            pass  # headers
        stream.opened = True
        event = None
        while time.time() < stop_at:
            line = await asyncio.wait_for(reader.readline(), max(0.1, stop_at - time.time()))
            if not line:
                break
            # HTTP/1.0: the body is the stream itself, not chunked.
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"data: ") and event == b"task.updated":
                arrived = time.time()
                doc = json.loads(line[6:])
                stream.latencies.append(arrived - parse_time(doc["timestamp"]))
                stream.titles.append(doc["data"]["title"])
        writer.close()
    except asyncio.TimeoutError:
        pass
    except OSError as err:
        stream.error = repr(err)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("admins")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--streams-per-user", type=int, default=5)
    p.add_argument("--writes-per-s", type=float, default=10)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--summary")
    a = p.parse_args()
    api = a.base.rstrip("/") + "/api/v1"
    run = uuid.uuid4().hex[:8]
    password = "sse-load-password-long-enough"

    def user(n):
        email = f"sse-{run}-{n}@example.com"
        status, doc = call("POST", f"{api}/auth/register", {"email": email, "password": password, "display_name": f"SSE {n}"})
        assert status == 201, (status, doc)
        status, tokens = call("POST", f"{api}/auth/login", {"email": email, "password": password})
        assert status == 200, (status, tokens)
        return doc["id"], tokens["access_token"]

    started = time.time()
    owner_id, owner = user(0)
    status, project = call("POST", f"{api}/projects", {"name": "SSE load"}, owner)
    assert status == 201, (status, project)
    status, task = call("POST", f"{api}/projects/{project['id']}/tasks", {"title": "watched"}, owner)
    assert status == 201, (status, task)
    tokens = [owner]
    loop = asyncio.get_running_loop()
    for n in range(1, a.users):
        uid, token = await loop.run_in_executor(None, user, n)
        status, _ = call("PUT", f"{api}/projects/{project['id']}/members/{uid}", {"role": "viewer"}, owner)
        assert status in (200, 201), status
        tokens.append(token)
    print(f"streams: {a.users} users ready in {time.time() - started:.1f}s", file=sys.stderr)

    admins = a.admins.split(",")
    before = [resident_bytes(x) for x in admins]
    total = a.users * a.streams_per_user
    stop_at = time.time() + 10 + a.duration + 15
    streams = [Stream(i) for i in range(total)]
    tasks = [asyncio.create_task(follow(s, a.base, project["id"], tokens[i % a.users], stop_at)) for i, s in enumerate(streams)]
    deadline = time.time() + 20
    while time.time() < deadline and sum(s.opened or s.error is not None for s in streams) < total:
        await asyncio.sleep(0.1)
    opened = sum(s.opened for s in streams)
    await asyncio.sleep(2)
    after = [resident_bytes(x) for x in admins]
    per_stream = (sum(after) - sum(before)) / max(opened, 1)
    print(f"streams: {opened} of {total} open; resident memory {sum(before) / 2**20:.1f} -> {sum(after) / 2**20:.1f} MiB", file=sys.stderr)

    # The writes: one task changed WRITES_PER_S times a second.
    titles = []
    interval = 1 / a.writes_per_s
    write_end = time.time() + a.duration
    n = 0
    while time.time() < write_end:
        title = f"change {n}"
        status, _ = await loop.run_in_executor(None, call, "PATCH", f"{api}/tasks/{task['id']}", {"title": title}, owner)
        if status == 200:
            titles.append(title)
        n += 1
        await asyncio.sleep(max(0, interval - 0.002))
    # Wait (bounded) until every stream has every change.
    settle = time.time() + 15
    while time.time() < settle and any(s.opened and len(s.titles) < len(titles) for s in streams):
        await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    latencies = sorted(x for s in streams for x in s.latencies)
    complete = sum(1 for s in streams if s.opened and s.titles == titles)
    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else None
    summary = {
        "streams_requested": total,
        "streams_open": opened,
        "stream_errors": sorted({s.error for s in streams if s.error})[:5],
        "changes": len(titles),
        "deliveries": len(latencies),
        "streams_with_every_change_in_order": complete,
        "fanout_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": latencies[-1] * 1000 if latencies else None},
        "resident_bytes_before": before,
        "resident_bytes_after": after,
        "resident_bytes_per_stream": per_stream,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if a.summary:
        open(a.summary, "w").write(text)
    ok = opened == total and complete == total and len(titles) > 0
    sys.exit(0 if ok else 1)


asyncio.run(main())
