"""CLI wall-time benchmark: `coderunner exec` and `--help` beside bare python, as medians and ratios.

    python tests/bench/cli.py            # starts a local sandbox in a temp state dir
    python tests/bench/cli.py --reuse    # use the sandbox `coderunner up` already started

Targets (issue #3): exec under 150 ms median against a warm sandbox, --help under 200 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str], env: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if not args.reuse:
        env["CODERUNNER_HOME"] = tempfile.mkdtemp(prefix="crbench-")
        subprocess.run(["coderunner", "up", "--runtime", "local"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        wall(["coderunner", "exec", "-c", "print(1)"], env, 3)
        rows = {
            "coderunner exec -c 'print(1)'": wall(["coderunner", "exec", "-c", "print(1)"], env, args.n),
            "coderunner --help": wall(["coderunner", "--help"], env, args.n),
            "python3 -c 'print(1)'": wall([sys.executable, "-c", "print(1)"], env, args.n),
        }
    finally:
        if not args.reuse:
            subprocess.run(["coderunner", "down", "--remove"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    base = statistics.median(rows["python3 -c 'print(1)'"])
    print(f"{'command':32} {'median ms':>10} {'x python':>9}")
    for name, s in rows.items():
        print(f"{name:32} {statistics.median(s):10.1f} {statistics.median(s) / base:9.2f}")
    print()
    for name, target in (("coderunner exec -c 'print(1)'", 150), ("coderunner --help", 200)):
        m = statistics.median(rows[name])
        print(f"{name:32} {m:10.1f} target < {target} ms  {'ok' if m < target else 'MISSED'}")


if __name__ == "__main__":
    main()
