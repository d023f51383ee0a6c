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


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        clean = os.path.join(tmp, "clean")
        shutil.copytree(SRC, clean)
        code, out = run(clean)
        print(f"unchanged tree: exit {code}")
        if code != 0:
            failures.append(f"the unchanged tree fails the check:\n{out}")

        across = os.path.join(tmp, "across")
        shutil.copytree(SRC, across)
        plant(across, "telemetry/context.rs", "#[allow(unused_imports)]\nuse crate::state::AppState;")
        code, out = run(across)
        print(f"planted telemetry/context.rs -> state.rs: exit {code}")
        print("  " + "\n  ".join(out.strip().splitlines()))
        if code != 1 or "state.rs" not in out or "telemetry/context.rs" not in out:
            failures.append("a cycle between folders was not reported")

        upward = os.path.join(tmp, "upward")
        shutil.copytree(SRC, upward)
        plant(upward, "tasks/service.rs", "#[allow(unused_imports)]\nuse crate::state::AppState;")
        code, out = run(upward)
        print(f"planted tasks/service.rs -> state.rs (a service reaching up): exit {code}")
        print("  " + "\n  ".join(out.strip().splitlines()))
        if code != 1 or "higher layer: tasks/service.rs (services) imports state.rs (state)" not in out:
            failures.append("an import of a higher layer was not reported")

        within = os.path.join(tmp, "within")
        shutil.copytree(SRC, within)
        plant(within, "db/traced.rs", "#[allow(unused_imports)]\nuse crate::db::connect;")
        plant(within, "db/connect.rs", "#[allow(unused_imports)]\nuse crate::db::traced::Traced;")
        code, out = run(within)
        print(f"planted db/traced.rs <-> db/connect.rs (one folder): exit {code}")
        if code != 0:
            failures.append(f"a cycle inside one folder was reported:\n{out}")

    for failure in failures:
        print(f"layers self-test: {failure}", file=sys.stderr)
    print("layers self-test: " + ("FAILED" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
