"""HTTP without a proxy (everything is on 127.0.0.1), and Prometheus's query API."""

import json
import urllib.error
import urllib.parse
import urllib.request


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None, timeout=15):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def prom_get(prom, path, params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    status, _, body = http("GET", url, timeout=30)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"status": "error", "error": body[:200].decode(errors="replace")}
    return status, doc


def prom_query(prom, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    return prom_get(prom, "/api/v1/query", params)
