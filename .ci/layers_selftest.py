#!/usr/bin/env python3
"""Shows that .ci/layers.py fails on a planted cycle, and only then.

Copies src/ to a temporary directory four times: unchanged (the check must pass), with a cycle
planted between folders (telemetry, the bottom layer, made to import the application state, which
imports telemetry), with a service importing the state above it (no cycle, but against the Code
map), and with a cycle planted inside one folder (which is allowed). Exits 1 if the check does
not answer as expected.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")
CHECK = os.path.join(HERE, "layers.py")


def run(src):
    result = subprocess.run(
        [sys.executable, CHECK, "--src", src], capture_output=True, text=True, check=False
    )
    return result.returncode, result.stdout + result.stderr


def plant(src, rel, line):
    with open(os.path.join(src, rel), "a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")


# (what is planted, [(file, line to append)], expected exit code, text the output must hold)
CASES = [
    ("nothing", [], 0, "no import cycle"),
    (
        "a cycle across folders: telemetry/context.rs -> state.rs",
        [("telemetry/context.rs", "use crate::state::AppState;")],
        1,
        "import cycle(s) across folders",
    ),
    (
        "a service reaching up: tasks/service.rs -> state.rs",
        [("tasks/service.rs", "use crate::state::AppState;")],
        1,
        "higher layer: tasks/service.rs (services) imports state.rs (state)",
    ),
    (
        "a cycle inside one folder: db/traced.rs <-> db/connect.rs (allowed)",
        [
            ("db/traced.rs", "use crate::db::connect;"),
            ("db/connect.rs", "use crate::db::traced::Traced;"),
        ],
        0,
        "no import cycle",
    ),
]


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, (what, plants, expected_code, expected_text) in enumerate(CASES):
            src = os.path.join(tmp, str(number))
            shutil.copytree(SRC, src)
            for rel, line in plants:
                plant(src, rel, f"#[allow(unused_imports)]\n{line}")
            code, out = run(src)
            print(f"planted {what}: exit {code}")
            print("  " + "\n  ".join(out.strip().splitlines()))
            if code != expected_code or expected_text not in out:
                failures.append(f"{what}: expected exit {expected_code} and `{expected_text}`")

    for failure in failures:
        print(f"layers self-test: {failure}", file=sys.stderr)
    print("layers self-test: " + ("FAILED" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
