"""SIGTERM ends every kernel and process; nothing is orphaned."""

from __future__ import annotations

import json
import signal
import threading
import time

from tests.conftest import descendants, pid_alive, pids_holding, wait_warm


def test_sigterm_ends_everything(gateway_factory):
    gw = gateway_factory("--pool-size", "1")
    wait_warm(gw, 1)
    pids = []
    for i in range(2):
        sid = gw.new_session()
        gw.execute(f"_hold = open('kernel{i}.mark', 'w')", session_id=sid)
        pids += pids_holding(gw.workspace / f"kernel{i}.mark")
    bash = gw.new_session(language="bash")
    gw.execute("exec 9>bash.mark", session_id=bash)
    pids += pids_holding(gw.workspace / "bash.mark")
    wait_warm(gw, 1)
    events: list[dict] = []

    def long_script():
        code = (
            "import subprocess, time\n_hold = open('script.mark', 'w')\n"
            "subprocess.Popen(['sleep', '120'], stdout=open('child.mark', 'w'))\nprint('up', flush=True)\n"
            "time.sleep(120)"
        )
        with gw.client().stream(
            "POST", "/v1/execute", json={"code": code}, headers={"Accept": "application/x-ndjson"}
        ) as r:
            for line in r.iter_lines():
                events.append(json.loads(line))

    t = threading.Thread(target=long_script)
    t.start()
    deadline = time.monotonic() + 10
    while not any(e["type"] == "stdout" for e in events):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pids += pids_holding(gw.workspace / "script.mark") + pids_holding(gw.workspace / "child.mark")
    assert len(pids) == 5
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
