"""Sessions never wait for a kernel: created at once, warm from the pool or bound when their own
kernel has started; the pool grows when a burst drains it, shrinks back when idle, and says
in /health how warm it is."""

from __future__ import annotations

import json
import statistics
import threading
import time

import httpx

from tests.conftest import descendants, wait_warm


def pool(gw) -> dict:
    return httpx.get(gw.url + "/health").json()["kernel_pool"]


def kernels_of(gw) -> int:
    """ipykernel processes under the gateway (each in its cell)."""
    n = 0
    for pid in descendants(gw.proc.pid):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        n += b"ipykernel_launcher" in argv and not argv[0].endswith(b"bwrap")
    return n


def wait_for(what, timeout: float = 60, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (value := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)
    return value


def test_a_burst_of_sessions_is_created_at_once_and_each_gets_a_kernel_of_its_own(gateway_factory):
    gw = gateway_factory("--pool-size", "2", "--pool-max", "4", "--max-sessions", "40")
    wait_warm(gw, 2)
    assert pool(gw) == {"warm": 2, "starting": 0, "waiting": 0, "target": 2, "floor": 2, "max": 4}
    c = gw.client()
    made, times = [], []
    for _ in range(12):  # back to back: the pool of 2 runs dry at the third
        t0 = time.perf_counter()
        r = c.post("/v1/sessions", json={})
        times.append(time.perf_counter() - t0)
        assert r.status_code == 201, r.text
        made.append(r.json())
    # the creations did not wait for kernels: most sessions said their kernel was still starting
    states = [s["kernel"] for s in made]
    assert states.count("starting") >= 8, states
    assert statistics.median(times) < 0.5, times  # a cold kernel costs about a second of CPU here
    grown = pool(gw)
    assert grown["target"] == 4 and grown["waiting"] + grown["starting"] >= 1, grown  # doubled, capped at max
    # every session works, keeps its own state, in a kernel of its own
    sids = [s["session_id"] for s in made]
    for i, sid in enumerate(sids):
        r = c.post("/v1/execute", json={"code": f"x = {i}", "session_id": sid}).json()
        assert r["status"] == "ok", r
    seen = set()
    for i, sid in enumerate(sids):
        code = "from ipykernel import get_connection_file\nprint(x, get_connection_file())"
        r = c.post("/v1/execute", json={"code": code, "session_id": sid}).json()
        value, conn = r["stdout"].split()
        assert value == str(i), r
        seen.add(conn)
        assert c.get(f"/v1/sessions/{sid}").json()["kernel"] == "ready"
    assert len(seen) == len(sids)
    for sid in sids:
        c.delete(f"/v1/sessions/{sid}")
    # refilled to the grown target in the background; the next sessions find warm kernels
    wait_for(lambda: pool(gw)["warm"] >= 4, timeout=120)
    r = c.post("/v1/sessions", json={}).json()
    assert r["kernel"] == "ready", r


def test_the_grown_pool_shrinks_back_after_idle_time(gateway_factory):
    gw = gateway_factory("--pool-size", "1", "--pool-max", "4", "--pool-idle", "2")
    wait_warm(gw, 1)
    c = gw.client()
    sids = [c.post("/v1/sessions", json={}).json()["session_id"] for _ in range(3)]
    assert pool(gw)["target"] == 4  # dry at the second: 1 -> 2 -> 4
    for sid in sids:
        assert c.post("/v1/execute", json={"code": "1", "session_id": sid}).json()["status"] == "ok"
        c.delete(f"/v1/sessions/{sid}")
    # halved after 2 s without a new session, and again: back to the floor, the rest shut down
    wait_for(lambda: pool(gw)["target"] == 1, timeout=60)
    wait_for(lambda: (p := pool(gw))["warm"] <= 1 and p["starting"] == 0, timeout=60)
    wait_for(lambda: kernels_of(gw) <= 1, timeout=30)


def test_a_kernel_that_cannot_start_is_a_clear_error_at_the_first_execution(gateway_factory, tmp_path):
    # code's environment with a Python home that does not exist: every kernel exits at once
    env_file = tmp_path / "broken.env"
    env_file.write_text("PYTHONHOME=/nonexistent\n")
    gw = gateway_factory("--pool-size", "0", "--script-pool", "0", "--env-file", str(env_file))
    c = gw.client()
    r = c.post("/v1/sessions", json={})
    assert r.status_code == 201 and r.json()["kernel"] == "starting", r.text
    sid = r.json()["session_id"]
    r = c.post("/v1/execute", json={"code": "print(1)", "session_id": sid}).json()
    assert (r["status"], r["exit_code"], r["stdout"]) == ("died", 137, ""), r
    assert r["message"].startswith("the session's kernel could not start (") and "nothing ran" in r["message"], r
    info = c.get(f"/v1/sessions/{sid}").json()
    assert info["kernel"] == "failed" and info["kernel_error"], info
    # the next execution tries a new kernel (which fails the same way here), streamed too
    with c.stream(
        "POST",
        "/v1/execute",
        json={"code": "print(1)", "session_id": sid},
        headers={"Accept": "application/x-ndjson"},
    ) as s:
        events = [json.loads(line) for line in s.iter_lines() if line]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "died", events
    assert "could not start" in events[-1]["message"]
    assert c.get("/health").json()["status"] == "ok"


def test_a_session_deleted_before_its_kernel_started_leaves_no_kernel(gateway_factory):
    gw = gateway_factory("--pool-size", "0", "--max-sessions", "3")
    c = gw.client()
    sids = [c.post("/v1/sessions", json={}).json()["session_id"] for _ in range(3)]
    # the limit counts sessions whose kernel is still starting
    r = c.post("/v1/sessions", json={})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_sessions", r.text
    for sid in sids:
        assert c.delete(f"/v1/sessions/{sid}").status_code == 200
    # the kernels already starting for them are not kept (no pool) nor given to anyone
    wait_for(lambda: pool(gw)["starting"] == 0 and kernels_of(gw) == 0, timeout=60)
    assert pool(gw)["warm"] == 0


def test_an_execution_waiting_for_its_kernel_can_be_interrupted_and_restart_does_not_wait(gateway_factory):
    gw = gateway_factory("--pool-size", "0")
    c = gw.client()
    sid = c.post("/v1/sessions", json={}).json()["session_id"]
    result = {}

    def run():
        code = "import time; time.sleep(60)"
        result.update(gw.client().post("/v1/execute", json={"code": code, "session_id": sid}).json())

    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: c.get(f"/v1/sessions/{sid}").json()["busy"], timeout=10, every=0.02)
    assert c.post(f"/v1/sessions/{sid}/interrupt").status_code == 200
    t.join(30)
    assert result["status"] == "interrupted" and result["exit_code"] == 130, result
    assert c.post("/v1/execute", json={"code": "y = 7", "session_id": sid}).json()["status"] == "ok"
    r = c.post(f"/v1/sessions/{sid}/restart")
    assert r.status_code == 200 and r.json()["kernel"] == "starting", r.text  # returns at once
    r = c.post("/v1/execute", json={"code": "print('y' in globals())", "session_id": sid}).json()
    assert r["stdout"] == "False\n", r
