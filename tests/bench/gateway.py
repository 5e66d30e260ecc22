"""Gateway latency benchmark: prints a table, beside the floors measured in the same run.

    python tests/bench/gateway.py                 # starts its own gateway
    python tests/bench/gateway.py --url URL --token TOKEN

Targets: session exec p50 within 1.5x a bare jupyter_client round trip;
script run within 25 ms of bare ``python -c pass`` with each script in a cell
of its own (issue #12; the cost of that cell is printed: the same script on a
gateway started with ``--isolation none``); session create p50 under 50 ms
(warm pool); first streamed byte under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bare_kernel_roundtrip(n: int) -> list[float]:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:

        def once():
            msg_id = kc.execute("print(1)")
            while True:
                msg = kc.get_iopub_msg(timeout=10)
                if (
                    msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"
                ):
                    break
            kc.get_shell_msg(timeout=10)

        timed(once, 10)
        return timed(once, n)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def wait_warm(c: httpx.Client, n: int = 1) -> None:
    while c.get("/health").json()["warm_kernels"] < n:
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--token")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = ap.parse_args()

    gw = None
    if args.url:
        url, token = args.url, args.token
    else:
        from tests.conftest import start_gateway

        gw = start_gateway(Path(tempfile.mkdtemp()), "--pool-size", "2")
        url, token = gw.url, gw.token
    c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    n = args.n
    rows: dict[str, list[float]] = {}
    try:
        wait_warm(c, 2)
        sid = c.post("/v1/sessions", json={}).json()["session_id"]
        run = lambda body: c.post("/v1/execute", json=body).json()  # noqa: E731
        timed(lambda: run({"code": "print(1)", "session_id": sid}), 20)
        rows["session exec print(1)"] = timed(lambda: run({"code": "print(1)", "session_id": sid}), n)
        rows["bare jupyter_client round trip"] = bare_kernel_roundtrip(n)

        timed(lambda: run({"code": "pass"}), 5)
        rows["script run (pass)"] = timed(lambda: run({"code": "pass"}), max(20, n // 4))
        rows["bare python -c pass"] = timed(lambda: subprocess.run([sys.executable, "-c", "pass"]), max(20, n // 4))
        if gw is not None:  # the same script with no cell around it: what isolation costs
            from tests.conftest import start_gateway

            bare = start_gateway(Path(tempfile.mkdtemp()), "--pool-size", "0", "--isolation", "none")
            try:
                with httpx.Client(base_url=bare.url, headers=bare.headers, timeout=60) as bc:
                    timed(lambda: bc.post("/v1/execute", json={"code": "pass"}), 5)
                    rows["script run, --isolation none"] = timed(
                        lambda: bc.post("/v1/execute", json={"code": "pass"}), max(20, n // 4)
                    )
            finally:
                bare.stop()

        creates = []
        for _ in range(20):
            wait_warm(c, 1)
            t0 = time.perf_counter()
            s = c.post("/v1/sessions", json={}).json()["session_id"]
            creates.append((time.perf_counter() - t0) * 1000)
            c.delete(f"/v1/sessions/{s}")
        rows["session create (warm pool)"] = creates

        first = []
        for _ in range(20):
            t0 = time.perf_counter()
            with c.stream(
                "POST",
                "/v1/execute",
                json={"code": "import time\nprint('x', flush=True)\ntime.sleep(0.2)", "session_id": sid},
                headers={"Accept": "application/x-ndjson"},
            ) as r:
                for line in r.iter_lines():
                    if json.loads(line)["type"] == "stdout":
                        first.append((time.perf_counter() - t0) * 1000)
                        break
        rows["first streamed byte (session)"] = first

        # throughput: 8 sessions, each running print(1) in a loop
        sids = []
        for _ in range(8):
            wait_warm(c, 1)
            sids.append(c.post("/v1/sessions", json={}).json()["session_id"])
        per = max(20, n // 4)

        def worker(s: str) -> None:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as wc:
                for _ in range(per):
                    wc.post("/v1/execute", json={"code": "print(1)", "session_id": s})

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(s,)) for s in sids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        throughput = 8 * per / (time.perf_counter() - t0)
    finally:
        c.close()
        if gw is not None:
            gw.stop()

    print(f"{'measure':34} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'n':>5}")
    for name, s in rows.items():
        print(f"{name:34} {pct(s, 50):8.2f} {pct(s, 90):8.2f} {pct(s, 99):8.2f} {len(s):5d}")
    print(f"{'8 sessions concurrently':34} {throughput:8.0f} executions/s")
    p50 = {k: statistics.median(v) for k, v in rows.items()}
    checks = [
        (
            "session exec / bare round trip",
            p50["session exec print(1)"] / p50["bare jupyter_client round trip"],
            "x",
            1.5,
        ),
        ("script run - bare python", p50["script run (pass)"] - p50["bare python -c pass"], "ms", 25),
        ("session create p50", p50["session create (warm pool)"], "ms", 50),
        ("first streamed byte p50", p50["first streamed byte (session)"], "ms", 50),
    ]
    print()
    for name, value, unit, target in checks:
        print(f"{name:34} {value:8.2f} {unit:3} target < {target:<5} {'ok' if value < target else 'MISSED'}")
    if "script run, --isolation none" in p50:
        cost = p50["script run (pass)"] - p50["script run, --isolation none"]
        print(f"{'cost of a cell per script':34} {cost:8.2f} ms")
    if args.json:
        print(json.dumps({"p50": p50, "throughput": throughput}))


if __name__ == "__main__":
    main()
