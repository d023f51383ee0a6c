#!/usr/bin/env python3
"""A small webhook receiver for Alertmanager: the local example receiver of the compose stack,
and the receiver of observability/check-alerting.sh's end-to-end check.

Every POST (any path) is answered 200 and its body, Alertmanager's webhook payload (JSON), is
appended as one line to OUT ("-" for standard output), compacted to a single line. A body that is
not JSON is recorded as {"invalid_body": "<text>"} so that nothing is lost silently. GET answers
200 "ok" (a health check).

Usage: webhook-receiver.py HOST:PORT OUT
       webhook-receiver.py 127.0.0.1:9095 /tmp/notifications.jsonl
       webhook-receiver.py 0.0.0.0:9095 -        (compose: `docker compose logs alert-receiver`)

Only the standard library; stops on SIGTERM or SIGINT.
"""

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main() -> None:
    if len(sys.argv) != 3 or ":" not in sys.argv[1]:
        sys.exit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    out_path = sys.argv[2]
    out = sys.stdout if out_path == "-" else open(out_path, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"invalid_body": raw}
            line = json.dumps(body, separators=(",", ":"), sort_keys=True)
            with LOCK:
                out.write(line + "\n")
                out.flush()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            # One line per request on stderr, not on OUT (which may be stdout).
            sys.stderr.write("webhook-receiver: %s %s\n" % (self.address_string(), format % args))

    server = ThreadingHTTPServer((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"webhook-receiver: listening on {host}:{port}, writing to {out_path}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
