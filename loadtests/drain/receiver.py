"""A webhook receiver for the drain run: answers 204 to every POST and appends one JSON line per
request ({"at", "webhook_id", "type", "task_id"}) to the file named on the command line. While a
file of that name plus `.delay` holds a number of seconds, each answer waits that long (so that a
worker holds its lease long enough to be killed holding it). Prints its port on the first line of
stdout. Listens on 127.0.0.1 only."""

import http.server
import json
import sys
import threading
import time

out = open(sys.argv[1], "a", buffering=1)
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        line = json.dumps({
            "at": time.time(),
            "webhook_id": self.headers.get("webhook-id"),
            "type": doc.get("type"),
            "task_id": (doc.get("data") or {}).get("id"),
        })
        with lock:
            out.write(line + "\n")
        try:
            time.sleep(min(float(open(sys.argv[1] + ".delay").read()), 5))
        except (OSError, ValueError):
            pass
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
