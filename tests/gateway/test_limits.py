"""Floods of output stay bounded in the gateway's memory."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import peak_rss_mb

FLOOD_MB = 200
FLOOD = f"import sys\nchunk = 'x' * (1 << 20)\nfor _ in range({FLOOD_MB}):\n    sys.stdout.write(chunk)\n"


def test_flood_is_bounded_and_reported(gateway_factory):
    gw = gateway_factory("--max-output-bytes", str(4 << 20), "--pool-size", "1")
    gw.execute("print('warm up')")
    before = peak_rss_mb(gw.proc.pid)

    r = gw.execute(FLOOD)
    assert r["status"] == "ok"
    assert len(r["stdout"]) == 4 << 20
    assert r["truncated"] is True
    assert r["dropped"]["stdout"] == (FLOOD_MB << 20) - (4 << 20)
    assert "dropped" in r["message"]

    # streamed: every byte arrives, memory still bounded (backpressure)
    total = 0
    with gw.client(timeout=300).stream(
        "POST", "/v1/execute", json={"code": FLOOD}, headers={"Accept": "application/x-ndjson"}
    ) as resp:
        for line in resp.iter_lines():
            e = json.loads(line)
            if e["type"] == "stdout":
                total += len(e["text"])
    assert total == FLOOD_MB << 20

    # and in a session: the kernel cuts at the source (PUB/SUB has no backpressure)
    sid = gw.new_session()
    r = gw.execute(FLOOD + "print('still here', file=sys.stderr)", session_id=sid)
    assert r["truncated"] is True and len(r["stdout"]) == 4 << 20
    assert r["dropped"] == {"stdout": (FLOOD_MB << 20) - (4 << 20), "stderr": len("still here\n"), "outputs": 0}
    # the cap is per execution: the next one is whole again
    assert gw.execute("print('ok')", session_id=sid)["stdout"] == "ok\n"

    growth = peak_rss_mb(gw.proc.pid) - before
    assert growth < 100, f"gateway peak memory grew by {growth:.0f} MB for a {FLOOD_MB} MB flood"


def _rss_mb(pid: int) -> float:
    return peak_rss_mb(pid, "VmRSS")


def test_memory_of_a_large_answer_is_given_back_when_idle(gateway_factory):
    """Large answers are served from a heap that keeps its pages (heap.py); an idle gateway
    gives them back within seconds instead of holding its last large output. Whole answers
    (sessions'), three at once: their buffers live together, and the heap keeps them."""
    gw = gateway_factory("--pool-size", "3")
    code = "import sys; sys.stdout.write('x' * (15 << 20))"
    sessions = [gw.new_session() for _ in range(3)]
    gw.execute("pass")
    base = _rss_mb(gw.proc.pid)
    for _ in range(2):
        with ThreadPoolExecutor(3) as pool:
            outs = list(pool.map(lambda sid: gw.execute(code, session_id=sid), sessions))
        assert [len(r["stdout"]) for r in outs] == [15 << 20] * 3
    held = _rss_mb(gw.proc.pid) - base
    assert held > 8, "the test did not make the gateway hold a large answer"
    deadline = time.monotonic() + 15
    while (now := _rss_mb(gw.proc.pid) - base) > held / 2:  # half of it given back at least
        assert time.monotonic() < deadline, f"{now:.0f} of {held:.0f} MiB still held 15 s after"
        time.sleep(0.5)


def test_a_forged_giant_record_from_code_is_not_gathered(gateway_factory):
    """Code writes its own record to the channel its output goes through, claiming a 4 GiB
    display, then sends 96 MiB of it: the gateway skips it instead of gathering it."""
    gw = gateway_factory("--pool-size", "0")
    gw.execute("pass")
    before = peak_rss_mb(gw.proc.pid)
    code = (
        "import fcntl, os, stat\n"
        "def writable_fifo(fd):\n    try:\n        return stat.S_ISFIFO(os.fstat(fd).st_mode) and"
        " fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY\n    except OSError:\n        return False\n"
        "chan = [fd for fd in range(3, 64) if writable_fifo(fd)]\n"
        "fd = chan[0]\nos.write(fd, b'\\x05' + (2**32 - 1).to_bytes(4, 'big'))\n"
        "block = b'z' * (1 << 20)\nfor _ in range(96):\n    os.write(fd, block)\nos._exit(7 if chan else 1)"
    )
    r = gw.execute(code, timeout=60)
    assert r["exit_code"] == 7, r  # the channel was found and the record sent (the rest of the output was its body)
    grown = peak_rss_mb(gw.proc.pid) - before
    assert grown < 48, f"the gateway grew {grown:.0f} MiB gathering a forged record"
    assert gw.execute("print(1)")["stdout"] == "1\n"
