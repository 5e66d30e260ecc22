"""The gateway's log holds what a user should read: a session's whole life (create, run, a
kernel that dies, restart, interrupt, delete), scripts and a SIGTERM leave no asyncio warnings
such as "coroutine KernelManager._async_cleanup_resources was never awaited" or "Task
exception was never retrieved"."""

from __future__ import annotations

import signal


def test_a_sessions_life_leaves_no_asyncio_warnings_in_the_log(gateway_factory):
    gw = gateway_factory("--pool-size", "1")
    c = gw.client()
    sid = gw.new_session()
    assert gw.execute("x = 41\nx + 1", session_id=sid)["outputs"][0]["data"]["text/plain"] == "42"
    assert gw.execute("import os; os._exit(1)", session_id=sid)["status"] == "died"
    assert c.post(f"/v1/sessions/{sid}/restart").status_code == 200
    assert c.post(f"/v1/sessions/{sid}/interrupt").status_code == 200
    assert gw.execute("1", session_id=sid)["status"] == "ok"
    assert c.delete(f"/v1/sessions/{sid}").status_code == 200
    bash = gw.new_session(language="bash")
    assert gw.execute("echo hi", session_id=bash)["stdout"] == "hi\n"
    assert gw.execute("print(1)")["stdout"] == "1\n"
    gw.new_session()  # left running: ended by the SIGTERM
    assert gw.stop(signal.SIGTERM) == 0
    log = gw.log.read_text()
    for warning in ("was never awaited", "was never retrieved", "Task was destroyed", "RuntimeWarning"):
        assert warning not in log, log
