"""Bounded traffic at the instances, so that every panel and rule has data to show."""

import http.server as http_server
import json
import threading
import time
import urllib.request
import uuid

from api import http


class Receiver:
    """A webhook receiver on 127.0.0.1: 204 on /ok, 500 on /fail (so that deliveries succeed,
    are retried, dead-letter and open a circuit)."""

    def __init__(self):
        received = self.received = []

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.path, self.headers.get("webhook-id"), self.rfile.read(length)))
                self.send_response(204 if self.path == "/ok" else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def follow_stream(url, token, seconds, frames):
    """Reads a project's event stream for `seconds` (in a thread), counting its frames."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + seconds
    try:
        with opener.open(request, timeout=seconds + 5) as resp:
            while time.monotonic() < deadline:
                line = resp.readline()
                if not line:
                    return
                if line.startswith(b"id:"):
                    frames.append(line)
    except OSError:
        pass


class Traffic:
    def __init__(self, apis):
        self.apis = apis
        self.statuses = {}
        self.per_base = {}
        self.requests = 0
        self.reuse_request_id = None

    def call(self, i, method, path, body=None, token=None, headers=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        base = self.apis[i % len(self.apis)]
        status, resp_headers, raw = http(method, base + path, body, hdrs)
        self.requests += 1
        self.per_base[base] = self.per_base.get(base, 0) + 1
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
    # Webhooks: one endpoint that answers 204 and one that answers 500 (retried, dead-lettered,
    # its circuit opened: the instances run with a short schedule), and a live event stream.
    receiver = Receiver()
    hooks = []
    for path in ("/ok", "/fail"):
        status, _, doc = t.call(0, "POST", f"/api/v1/projects/{users[0]['project']}/webhooks",
                                {"url": receiver.url + path, "event_types": ["task.created", "task.updated"]},
                                users[0]["token"])
        t.expect(201, status, f"create webhook {path}")
        hooks.append(doc["webhook"]["id"])
    stream_frames = []
    stream = threading.Thread(target=follow_stream, daemon=True, args=(
        f"{apis[1 % len(apis)]}/api/v1/projects/{users[0]['project']}/events", users[0]["token"],
        seconds + 5, stream_frames))
    stream.start()
    t.receiver, t.stream_frames = receiver, stream_frames

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
    ok = sum(1 for path, _, _ in receiver.received if path == "/ok")
    failed = sum(1 for path, _, _ in receiver.received if path == "/fail")
    if not ok or not failed:
        raise SystemExit(f"traffic: the webhook receiver got {ok} deliveries on /ok and {failed} on /fail")
    if not stream_frames:
        raise SystemExit("traffic: the event stream carried no event")
    print(f"traffic: webhooks {ok} delivered, {failed} refused by the failing endpoint; "
          f"{len(stream_frames)} events on the stream")
    return t
