"""LogQL: a small parser and evaluator for the subset the dashboards use, run over captured
JSON log lines."""

import json
import re


# The labels the log shipper puts on Loki streams; everything else is a JSON field of the line.
STREAM_LABELS = {"service", "instance_id", "level"}
# Labels Loki adds itself.
LOKI_SPECIAL_LABELS = {"__error__", "__error_details__", "__line__", "__timestamp__"}


TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|=|>|<|\||\{|\}|\(|\)|\[|\]|,|\+|-|\*|/|%|\^)
  | (?P<num>\d+(?:\.\d+)?(?:[a-zA-Z]+(?:\d+(?:\.\d+)?[a-zA-Z]+)*)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)
CMP_OPS = {"=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="}
LINE_OPS = {"|=", "|~", "!=", "!~"}


class LogQLError(Exception):
    pass


def tokenize(q):
    toks, pos = [], 0
    while pos < len(q):
        m = TOKEN_RE.match(q, pos)
        if not m:
            raise LogQLError(f"cannot read {q[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            toks.append((kind, m.group(kind)))
    return toks


def unquote(tok):
    kind, text = tok
    if kind != "str":
        raise LogQLError(f"expected a string, got {text!r}")
    if text.startswith("`"):
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError as err:
        raise LogQLError(f"bad string {text}: {err}")


class Pipeline:
    def __init__(self, matchers):
        self.matchers = matchers  # [(name, op, value)]
        self.stages = []          # ("line", op, value) | ("json", params) | ("filter", dnf) | ...
        self.refs = []            # (name, after_json) field or label references
        self.json = False


def parse_logql(q):
    """Returns (pipelines, grouping labels). Raises LogQLError on what it cannot read."""
    toks = tokenize(q)
    pipelines, groups = [], []
    cur = None
    i = 0

    def peek(k=0):
        return toks[i + k] if i + k < len(toks) else (None, None)

    def parse_value():
        nonlocal i
        kind, text = peek()
        if kind == "str":
            i += 1
            return ("str", unquote((kind, text)))
        if kind == "num":
            i += 1
            if not re.fullmatch(r"\d+(\.\d+)?", text):
                return ("unsupported", text)
            return ("num", float(text))
        raise LogQLError(f"expected a value, got {text!r}")

    def parse_comparison():
        nonlocal i
        kind, name = peek()
        if kind != "ident":
            raise LogQLError(f"expected a label name, got {name!r}")
        op = peek(1)[1]
        if op not in CMP_OPS:
            raise LogQLError(f"expected a comparison after {name}, got {op!r}")
        i += 2
        value = parse_value()
        cur.refs.append((name, cur.json))
        return (name, op, value)

    while i < len(toks):
        kind, text = toks[i]
        if text == "{" and kind == "op":
            i += 1
            matchers = []
            while peek()[1] != "}":
                k, name = peek()
                op = peek(1)[1]
                if k != "ident" or op not in ("=", "!=", "=~", "!~"):
                    raise LogQLError(f"bad stream matcher near {name!r}")
                i += 2
                matchers.append((name, op, unquote(peek())))
                i += 1
                if peek()[1] == ",":
                    i += 1
                elif peek()[1] != "}":
                    raise LogQLError("expected , or } in a stream selector")
            i += 1
            cur = Pipeline(matchers)
            pipelines.append(cur)
            continue
        if cur is not None and kind == "op" and text in LINE_OPS and peek(1)[0] == "str":
            cur.stages.append(("line", text, unquote(peek(1))))
            i += 2
            continue
        if cur is not None and text == "|" and peek(1)[0] == "ident":
            stage = peek(1)[1]
            i += 2
            if stage == "json":
                params = []
                while peek()[0] == "ident" and peek(1)[1] == "=" and peek(2)[0] == "str":
                    params.append((peek()[1], unquote(peek(2))))
                    i += 3
                    if peek()[1] == ",":
                        i += 1
                for name, path in params:
                    cur.refs.append((re.split(r"[.\[]", path, maxsplit=1)[0], True))
                cur.stages.append(("json", params))
                cur.json = True
            elif stage in ("logfmt", "pattern", "regexp", "unpack"):
                raise LogQLError(f"parser `{stage}`: the lines are JSON, use `| json`")
            elif stage == "line_format":
                tmpl = unquote(peek())
                i += 1
                for name in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", " ".join(re.findall(r"\{\{(.*?)\}\}", tmpl))):
                    cur.refs.append((name, cur.json))
                cur.stages.append(("line_format", tmpl))
            elif stage in ("keep", "drop", "label_format", "distinct"):
                raise LogQLError(f"stage `{stage}` is not supported by this checker")
            elif stage == "unwrap":
                if peek(1)[1] == "(":  # unwrap duration(x) / bytes(x)
                    i += 2
                name = peek()[1]
                i += 1
                if peek()[1] == ")":
                    i += 1
                cur.refs.append((name, cur.json))
                cur.stages.append(("unwrap", name))
            elif stage == "decolorize":
                pass
            else:
                i -= 1  # a label filter: name op value [and|or|, name op value ...]
                dnf = [[parse_comparison()]]
                while True:
                    k, t = peek()
                    if t in ("and", ","):
                        i += 1
                        dnf[-1].append(parse_comparison())
                    elif t == "or":
                        i += 1
                        dnf.append([parse_comparison()])
                    elif t == "(":
                        raise LogQLError("parenthesised label filters are not supported by this checker")
                    else:
                        break
                cur.stages.append(("filter", dnf))
            continue
        if text in ("by", "without") and peek(1)[1] == "(":
            i += 2
            while peek()[1] != ")":
                if peek()[0] == "ident":
                    groups.append(peek()[1])
                i += 1
            i += 1
            continue
        if text == "[":
            cur = None  # a range ends the log pipeline
            while peek()[1] not in ("]", None):
                i += 1
            i += 1
            continue
        if text == ")" and cur is not None:
            cur = None
        i += 1
    if not pipelines:
        raise LogQLError("no stream selector")
    return pipelines, groups


def regex_full(pattern, value):
    flags = 0
    if pattern.startswith("(?i)"):
        pattern, flags = pattern[4:], re.IGNORECASE
    return re.fullmatch(f"(?:{pattern})", value, flags) is not None


def compare(value, op, expected):
    vtype, v = expected
    if vtype == "unsupported":
        return True
    if vtype == "num":
        try:
            x = float(value)
        except (TypeError, ValueError):
            return False
        return {"==": x == v, "=": x == v, "!=": x != v, ">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v}[op]
    if op in ("=", "=="):
        return value == v
    if op == "!=":
        return value != v
    if op == "=~":
        return regex_full(v, value)
    if op == "!~":
        return not regex_full(v, value)
    raise LogQLError(f"operator {op} on a string")


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "_"))
        elif v is None:
            continue
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        elif isinstance(v, (int, float)):
            out[key] = json.dumps(v)
        elif isinstance(v, list):
            out[key] = json.dumps(v)
        else:
            out[key] = str(v)
    return out


def stream_labels_of(rec):
    return {k: str(rec[k]) for k in STREAM_LABELS if k in rec}


def run_pipeline(p, lines):
    matched = 0
    for raw, rec in lines:
        labels = stream_labels_of(rec)
        if not all(compare(labels.get(n, ""), op, ("str", v)) for n, op, v in p.matchers):
            continue
        ok = True
        for st in p.stages:
            if st[0] == "line":
                _, op, v = st
                hit = (v in raw) if op in ("|=", "!=") else (re.search(v, raw) is not None)
                ok = hit if op in ("|=", "|~") else not hit
            elif st[0] == "json":
                fields = flatten(rec)
                if st[1]:
                    for name, path in st[1]:
                        labels[name] = fields.get(path.replace(".", "_"), "")
                else:
                    for k, v in fields.items():
                        labels[k + "_extracted" if k in STREAM_LABELS else k] = v
            elif st[0] == "filter":
                ok = any(all(compare(labels.get(n, ""), op, val) for n, op, val in conj) for conj in st[1])
            if not ok:
                break
        if ok:
            matched += 1
    return matched
