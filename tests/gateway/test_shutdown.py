"""SIGTERM ends every kernel and process; nothing is orphaned."""

from __future__ import annotations

import json
import signal
import threading
import time

from tests.conftest import descendants, pid_alive, wait_warm


def test_sigterm_ends_everything(gateway_factory):
    gw = gateway_factory("--pool-size", "1")
    wait_warm(gw, 1)
    pids = []
    for _ in range(2):
        sid = gw.new_session()
        pids.append(int(gw.execute("import os; print(os.getpid())", session_id=sid)["stdout"]))
    bash = gw.new_session(language="bash")
    pids.append(int(gw.execute("echo $$", session_id=bash)["stdout"]))
    wait_warm(gw, 1)
    events: list[dict] = []

    def long_script():
        code = "import os, subprocess, time\nprint(os.getpid(), subprocess.Popen(['sleep','120']).pid, flush=True)\ntime.sleep(120)"
        with gw.client().stream("POST", "/v1/execute", json={"code": code},
                                headers={"Accept": "application/x-ndjson"}) as r:
            for line in r.iter_lines():
                events.append(json.loads(line))

    t = threading.Thread(target=long_script)
    t.start()
    deadline = time.monotonic() + 10
    while not any(e["type"] == "stdout" for e in events):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pids += [int(p) for p in next(e for e in events if e["type"] == "stdout")["text"].split()]
    children = descendants(gw.proc.pid)
    assert set(pids) <= set(children)

    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(20) == 0
    assert time.monotonic() - t0 < 15
    t.join(5)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "died"
    time.sleep(0.2)
    alive = [p for p in children if pid_alive(p)]
    assert alive == [], f"processes outlived the gateway: {alive}"

