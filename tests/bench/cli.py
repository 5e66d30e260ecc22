"""CLI wall-time benchmark: `coderunner exec` and `--help`, each beside its floor from the same run.

    python tests/bench/cli.py            # starts a local sandbox in a temp state dir
    python tests/bench/cli.py --reuse    # use the sandbox `coderunner up` already started
    python tests/bench/cli.py -n 50      # more runs per command (default 30)

Targets (issue #10), as medians, each beside a floor run on the same Python in the same loop:

    coderunner exec -c 'print(1)'      <= 3x  python -c 'print(1)'
    coderunner exec script.py < in     <= 4x  python script.py < in
    coderunner --help                  <= 120 ms (and its ratio to python -c pass, for noisy machines)

The runs interleave (every command once per round, in a shuffled order), so load on the machine hits
each alike; each run starts --settle seconds after the last one ended, so none pays for what the
one before left running (the gateway refilling its warm interpreters after a script). The
help is measured warm: its first call renders it with typer and keeps it (coderunner_cli/_help.py).
The floor is this interpreter (sys.executable), the one the CLI runs on; the header says whether
its start-up runs editable-install finder hooks, which the CLI and the floors pay alike. Every
command runs with Python's default bytecode cache (PYTHONDONTWRITEBYTECODE unset), as a user's
does: with it set, each call compiles the CLI's own modules again (about 10 ms here).
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import statistics
import subprocess
import sys
import sysconfig
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
    ap.add_argument("-n", type=int, default=30, help="runs of each command (interleaved)")
    ap.add_argument("--reuse", action="store_true", help="the sandbox already running (`coderunner up`)")
    ap.add_argument("--settle", type=float, default=0.2, help="seconds between runs (default 0.2)")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if not args.reuse:
        env["CODERUNNER_HOME"] = tempfile.mkdtemp(prefix="crbench-")
        subprocess.run(["coderunner", "up", "--runtime", "local"], env=env, check=True, stdout=subprocess.DEVNULL)
    script = Path(tempfile.mkdtemp(prefix="crbench-")) / "echo.py"
    script.write_text("import sys\nsys.stdout.write(sys.stdin.read())\n")
    py = sys.executable
    data = b"x" * 1000
    cmds = {  # name: (argv, stdin)
        "python -c 'print(1)'": ([py, "-c", "print(1)"], None),
        "python script.py < in": ([py, str(script)], data),
        "python -c pass": ([py, "-c", "pass"], None),
        "coderunner exec -c 'print(1)'": (["coderunner", "exec", "-c", "print(1)"], None),
        "coderunner exec script.py < in": (["coderunner", "exec", str(script)], data),
        "coderunner --help": (["coderunner", "--help"], None),
    }
    targets = [  # (command, its floor, at most this many times the floor or None, at most this many ms or None)
        ("coderunner exec -c 'print(1)'", "python -c 'print(1)'", 3.0, None),
        ("coderunner exec script.py < in", "python script.py < in", 4.0, None),
        ("coderunner --help", "python -c pass", None, 120.0),
    ]
    rows: dict[str, list[float]] = {name: [] for name in cmds}
    try:
        for argv, stdin in cmds.values():
            once(argv, env, stdin)  # warm caches, the sandbox's pools and the kept help
        order = list(cmds)
        shuffle = random.Random(10).shuffle
        for _ in range(args.n):
            shuffle(order)
            for name in order:
                time.sleep(args.settle)
                argv, stdin = cmds[name]
                rows[name].append(once(argv, env, stdin))
    finally:
        if not args.reuse:
            subprocess.run(
                ["coderunner", "down", "--remove"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
    hooks = glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "__editable__*finder.py"))
    print(f"python: {py} ({'editable finder hooks: ' + str(len(hooks)) if hooks else 'no editable finder hooks'})")
    print(
        f"median of {args.n} interleaved runs each, {args.settle:g}s apart, on {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    med = {name: statistics.median(times) for name, times in rows.items()}
    print(f"{'command':32} {'ms':>7}   {'floor':24} {'ms':>7} {'ratio':>6}  target")
    for name, floor, ratio, ms in targets:
        m, f = med[name], med[floor]
        if ratio is not None:
            verdict = f"<= {ratio:g}x       {'ok' if m / f <= ratio else 'MISSED'}"
        else:
            verdict = f"<= {ms:g} ms   {'ok' if m <= ms else 'MISSED'}"
        print(f"{name:32} {m:7.1f}   {floor:24} {f:7.1f} {m / f:5.2f}x  {verdict}")


if __name__ == "__main__":
    main()
