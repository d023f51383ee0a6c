#!/usr/bin/env python3
"""The module graph of src/: which module imports which, and whether folders form a cycle.

Reads every `crate::` and `super::` path in src/ (use lines and inline paths alike; `#[cfg(test)]`
modules and `tests.rs` files are left out, since tests may reach anywhere) and resolves each to
the file that defines it. Files that reach each other form a cycle; a cycle whose files lie in
more than one folder (a top-level file counts as a folder of its own) fails the check. A
folder's `mod.rs` and its own files may reach each other freely.

Every file also belongs to a layer of the README's "Code map" (the LAYERS table below); an
import of a file in a higher layer fails the check too. Files of one layer may import each other.

    .ci/layers.py              check: exit 1 and print each cycle across folders, and each
                               import of a higher layer
    .ci/layers.py --graph      print every file's imports, lowest layer first
    .ci/layers.py --folders    print the graph between folders instead (it may have cycles:
                               api.rs of one area may use service.rs of another)
    .ci/layers.py --src DIR    analyse another tree (the planted-cycle test uses this)
"""

import argparse
import os
import re
import sys

# The README's "Code map", top to bottom: (layer, patterns of files relative to src/). The first
# layer with a matching pattern is the file's. `*` matches within one path segment.
LAYERS = [
    ("entry", ["main.rs", "lib.rs", "cli.rs"]),
    ("server", ["server.rs"]),
    ("router", ["router.rs"]),
    ("API", ["*/api.rs", "health.rs", "auth/bearer.rs"]),
    ("state", ["state.rs"]),
    (
        "services",
        [
            "*/service.rs",
            "idempotency/mod.rs",
            "events/feed.rs",
            "webhooks/delivery.rs",
            "housekeeping.rs",
        ],
    ),
    ("unit of work", ["domain.rs", "store.rs"]),
    (
        "models and stores",
        [
            "*/model.rs",
            "*/store.rs",
            "*/requests.rs",
            # The domain areas' own modules (Principal lives in auth/mod.rs).
            "activity/mod.rs",
            "audit/mod.rs",
            "auth/mod.rs",
            "comments/mod.rs",
            "events/mod.rs",
            "webhooks/mod.rs",
            "invitations/mod.rs",
            "projects/mod.rs",
            "tasks/mod.rs",
            "users/mod.rs",
            "verification/mod.rs",
        ],
    ),
    ("HTTP plumbing", ["http/*", "ratelimit/middleware.rs"]),
    (
        "platform",
        [
            "auth/tokens.rs",
            "auth/password.rs",
            "cache/*",
            "ratelimit/*",
            "redis_client.rs",
            "db/*",
            "error.rs",
            "validate.rs",
            "paging.rs",
            "etag.rs",
            "mail.rs",
            "events/signal.rs",
            "events/slots.rs",
            "webhooks/client.rs",
            "webhooks/signing.rs",
        ],
    ),
    ("foundation", ["config/*", "telemetry/*"]),
]


def layer_of(rel):
    """(rank, name): rank 0 is the top layer. Files that match no pattern get None."""
    import fnmatch

    for rank, (name, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if fnmatch.fnmatchcase(rel, pattern) and rel.count(os.sep) == pattern.count("/"):
                return rank, name
    return None


PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_RE = re.compile(r"\buse\s+(crate|super)::([^;]*);", re.S)


def strip_comments_and_strings(text):
    """Blanks out comments and string literals so that paths inside them are not counted."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_modules(text):
    """Removes `#[cfg(test)] mod NAME { ... }` blocks (the text is already comment-free)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
        if not m:
            return text
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        text = text[:m.start()] + text[j:]


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (only the module paths matter)."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, _, rest = tree.partition("{")
    body = rest[:-1] if rest.endswith("}") else rest
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    paths = []
    for part in filter(None, parts):
        for sub in expand_use_tree(part):
            paths.append(head + sub if sub != "self" else head.rstrip(":"))
    return paths


class Tree:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path tuple -> file path relative to src
        for root, _dirs, names in os.walk(src):
            for name in names:
                if not name.endswith(".rs"):
                    continue
                rel = os.path.relpath(os.path.join(root, name), src)
                parts = rel[:-3].split(os.sep)
                if parts in (["lib"], ["main"]):
                    continue
                if parts[-1] == "mod":
                    parts = parts[:-1]
                if parts[-1] == "tests":
                    continue
                self.files[tuple(parts)] = rel

    def module_of(self, rel):
        parts = rel[:-3].split(os.sep)
        return tuple(parts[:-1] if parts[-1] == "mod" else parts)

    def resolve(self, path):
        """The longest prefix of a module path that is a file of the tree."""
        for k in range(len(path), 0, -1):
            if tuple(path[:k]) in self.files:
                return self.files[tuple(path[:k])]
        return None

    def imports(self, rel):
        with open(os.path.join(self.src, rel), encoding="utf-8") as f:
            text = strip_test_modules(strip_comments_and_strings(f.read()))
        module = self.module_of(rel)
        is_mod_rs = rel.endswith("mod.rs")
        found = set()
        raw = []
        for m in USE_RE.finditer(text):
            for p in expand_use_tree(m.group(2)):
                raw.append((m.group(1), p))
        for m in PATH_RE.finditer(USE_RE.sub(" ", text)):
            if m.group(2) != "::{":
                raw.append((m.group(1), m.group(2)[2:]))
        for root, p in raw:
            segs = [s for s in p.split("::") if s and s != "*"]
            if root == "crate":
                target = segs
            else:
                # `super` is the parent of this module (a mod.rs file is its folder's module).
                base = list(module)
                base = base[:-1]
                while segs and segs[0] == "super":
                    base = base[:-1]
                    segs = segs[1:]
                target = base + segs
            dest = self.resolve(target)
            if dest and dest != rel:
                found.add(dest)
        return found


def unit_of(rel):
    """A file's unit: its top-level folder, or the file itself at the top level."""
    parts = rel.split(os.sep)
    return parts[0] if len(parts) > 1 else parts[0][:-3]


def strongly_connected(graph):
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            result.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def layers(graph):
    """Each node's layer: 0 for nodes importing nothing, else one more than the highest import."""
    level = {}

    def depth(v, seen=()):
        if v in level:
            return level[v]
        if v in seen:
            return 0
        level[v] = d = 1 + max((depth(w, seen + (v,)) for w in graph[v]), default=-1)
        return d

    for v in graph:
        depth(v)
    return level


def example_path(graph, comp):
    """One concrete loop through a strongly connected component, for the error message."""
    comp = set(comp)
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path + [start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            loop_to = nxt[0]
            return path[path.index(loop_to):] + [loop_to]
        path.append(fresh[0])
        seen.add(fresh[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    parser.add_argument("--graph", action="store_true")
    parser.add_argument("--folders", action="store_true")
    args = parser.parse_args()

    tree = Tree(args.src)
    file_graph = {rel: tree.imports(rel) for rel in tree.files.values()}
    if args.folders:
        graph = {}
        for rel, deps in file_graph.items():
            u = unit_of(rel)
            graph.setdefault(u, set())
            graph[u].update(unit_of(d) for d in deps if unit_of(d) != u)
        cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    else:
        graph = file_graph
        cycles = [
            c for c in strongly_connected(graph) if len(c) > 1 and len({unit_of(f) for f in c}) > 1
        ]

    if args.graph or args.folders:
        level = layers(graph)
        for v in sorted(graph, key=lambda v: (level[v], v)):
            print(f"{level[v]:>2}  {v:<28} -> {', '.join(sorted(graph[v])) or '(nothing)'}")
        print()
    kind = "folders" if args.folders else "files"
    upward, unplaced = [], []
    for rel, deps in sorted(file_graph.items()):
        here = layer_of(rel)
        if here is None:
            unplaced.append(rel)
            continue
        for dep in sorted(deps):
            there = layer_of(dep)
            if there is not None and there[0] < here[0]:
                upward.append(f"{rel} ({here[1]}) imports {dep} ({there[1]})")
    if unplaced or upward:
        for rel in unplaced:
            print(f"layers: {rel} is in no layer of the Code map: add it to LAYERS in {__file__}")
        for line in upward:
            print(f"layers: an import of a higher layer: {line}")
        if not cycles:
            return 1
    if cycles:
        where = "between folders" if args.folders else "across folders"
        print(f"layers: {len(cycles)} import cycle(s) {where} in {os.path.normpath(args.src)}:")
        for comp in sorted(cycles, key=len, reverse=True):
            print(f"  {len(comp)} {kind}: {', '.join(comp)}")
            print(f"    for example: {' -> '.join(example_path(graph, comp))}")
        return 1
    print(f"layers: no import cycle across folders among the {len(graph)} {kind} of src/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
