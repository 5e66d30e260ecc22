"""CLI wall-time benchmark: `coderunner exec` and `--help` beside bare python, as medians and ratios.

    python tests/bench/cli.py            # starts a local sandbox in a temp state dir
    python tests/bench/cli.py --reuse    # use the sandbox `coderunner up` already started

Targets (issue #10), beside the floor `python -c 'print(1)'` measured in the same run: `exec -c` at most 3x
python, `exec script.py` with stdin piped at most 4x, `--help` under 120 ms. The runs interleave, so load
on the machine hits each command alike.
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


def once(cmd: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        env=env,
        input=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    return (time.perf_counter() - t0) * 1000


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
    script = Path(tempfile.mkdtemp(prefix="crbench-")) / "echo.py"
    script.write_text("import sys\nsys.stdout.write(sys.stdin.read())\n")
    floor = "python -c 'print(1)'"
    cmds = {  # name: (argv, stdin, target as a ratio to the floor, or None; target in ms, or None)
        floor: ([sys.executable, "-c", "print(1)"], None, None, None),
        "coderunner exec -c 'print(1)'": (["coderunner", "exec", "-c", "print(1)"], None, 3.0, None),
        "coderunner exec script.py < in": (["coderunner", "exec", str(script)], b"x" * 1000, 4.0, None),
        "coderunner --help": (["coderunner", "--help"], None, None, 120.0),
    }
    rows: dict[str, list[float]] = {name: [] for name in cmds}
    try:
        for argv, stdin, _, _ in cmds.values():
            once(argv, env, stdin)  # warm caches and the sandbox's pools
        for _ in range(args.n):
            for name, (argv, stdin, _, _) in cmds.items():
                rows[name].append(once(argv, env, stdin))
    finally:
        if not args.reuse:
            subprocess.run(
                ["coderunner", "down", "--remove"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
    base = statistics.median(rows[floor])
    print(f"{'command':34} {'median ms':>10} {'x python':>9}  target")
    for name, (_, _, ratio, ms) in cmds.items():
        m = statistics.median(rows[name])
        verdict = ""
        if ratio is not None:
            verdict = f"<= {ratio:g}x  {'ok' if m / base <= ratio else 'MISSED'}"
        elif ms is not None:
            verdict = f"<= {ms:g} ms  {'ok' if m <= ms else 'MISSED'}"
        print(f"{name:34} {m:10.1f} {m / base:9.2f}  {verdict}")


if __name__ == "__main__":
    main()
