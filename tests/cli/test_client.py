"""The Python client against a real gateway: results, streaming, sessions, errors, sync/async parity."""

from __future__ import annotations

import asyncio

import pytest

from coderunner_cli import AsyncCodeRunner, CodeRunner, execute
from coderunner_cli.errors import AuthError, ExecutionError, GatewayError, SandboxNotRunning, SessionNotFound

CASES = [
    ("print('hello')", {}),
    ("import sys\nprint('out')\nprint('err', file=sys.stderr)\nraise SystemExit(3)", {}),
    ("1/0", {}),
    ("import sys\nprint(sys.argv[1:], sys.stdin.read())", {"argv": ["x"], "stdin": "in"}),
    ("echo $((6*7)); exit 2", {"language": "bash"}),
    ("import time; time.sleep(5)", {"timeout": 0.5}),
]


def normalize(result):
    d = dict(result.__dict__)
    d.pop("execution_time")
    if d["error"]:
        d["error"] = {k: v for k, v in d["error"].items() if k != "traceback"}
    return d


def test_sync_and_async_twins_behave_alike(gateway):
    with CodeRunner(gateway.url, gateway.token) as cr:
        sync_results = [normalize(cr.execute(code, **kw)) for code, kw in CASES]
        sid = cr.session().id
        sync_session = [normalize(cr.execute(c, session=sid)) for c in ("x = 1", "x + 1", "1/0")]

    async def run_async():
        async with AsyncCodeRunner(gateway.url, gateway.token) as acr:
            results = [normalize(await acr.execute(code, **kw)) for code, kw in CASES]
            sid = (await acr.session()).id
            session = [normalize(await acr.execute(c, session=sid)) for c in ("x = 1", "x + 1", "1/0")]
            return results, session

    async_results, async_session = asyncio.run(run_async())
    assert sync_results == async_results
    for a, b in zip(sync_session, async_session, strict=True):
        a.pop("session_id"), b.pop("session_id")
        assert a == b
    assert sync_results[1]["exit_code"] == 3 and sync_results[1]["stderr"] == "err\n"
    assert sync_results[5]["status"] == "timeout"


def test_result_fields_and_callbacks(gateway):
    seen = {"out": [], "err": [], "outputs": []}
    with CodeRunner(gateway.url, gateway.token) as cr, cr.session() as s:
        r = s.execute(
            "import sys\nprint('a')\nprint('b', file=sys.stderr)\n40 + 2",
            on_stdout=seen["out"].append,
            on_stderr=seen["err"].append,
            on_output=seen["outputs"].append,
        )
        assert (r.stdout, r.stderr, r.text, r.success, r.exit_code) == ("a\n", "b\n", "42", True, 0)
        assert "".join(seen["out"]) == "a\n" and "".join(seen["err"]) == "b\n"
        assert seen["outputs"][0]["data"]["text/plain"] == "42"
        sid = s.id
    with CodeRunner(gateway.url, gateway.token) as cr, pytest.raises(SessionNotFound):
        cr.get_session(sid)  # the context manager deleted it


def test_streaming_events_in_order(gateway):
    with CodeRunner(gateway.url, gateway.token) as cr:
        with cr.stream("print(1)\nprint(2)") as events:
            kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "stdout" in kinds


def test_leaving_a_stream_early_stops_the_script(gateway):
    with CodeRunner(gateway.url, gateway.token) as cr:
        from tests.conftest import pids_holding

        with cr.stream(
            "import time\n_hold = open('leave.mark', 'w')\nprint('up', flush=True)\ntime.sleep(60)"
        ) as events:
            for e in events:
                if e["type"] == "stdout":
                    [pid] = pids_holding(gateway.workspace / "leave.mark")
                    break
        import time

        from tests.conftest import pid_alive

        deadline = time.monotonic() + 10
        while pid_alive(pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert cr.execute("print('still usable')").stdout == "still usable\n"


def test_one_liner_raises_with_traceback(gateway, monkeypatch):
    monkeypatch.setenv("CODERUNNER_URL", gateway.url)
    monkeypatch.setenv("CODERUNNER_TOKEN", gateway.token)
    assert execute("print(3)").stdout == "3\n"
    with pytest.raises(ExecutionError) as info:
        execute("def f():\n    raise KeyError('k')\nf()")
    assert "KeyError" in str(info.value)
    assert "raise KeyError('k')" in info.value.traceback
    assert info.value.result.exit_code == 1


def test_typed_errors(gateway, tmp_path):
    with pytest.raises(AuthError):
        CodeRunner(gateway.url, "wrong").sessions()
    with CodeRunner(gateway.url, gateway.token) as cr:
        with pytest.raises(SessionNotFound):
            cr.execute("1", session="nope")
        with pytest.raises(GatewayError) as info:
            cr.execute("1", language="cobol")
        assert info.value.code == "unknown_language"
        cr.upload("sub/data.txt", b"bytes")
        assert cr.download("sub/data.txt") == b"bytes"
    with pytest.raises(SandboxNotRunning):
        CodeRunner()  # no sandbox in this (temp) state dir, no env


async def _async_errors(url, token):
    async with AsyncCodeRunner(url, "wrong") as acr:
        with pytest.raises(AuthError):
            await acr.sessions()
    async with AsyncCodeRunner(url, token) as acr:
        with pytest.raises(SessionNotFound):
            await acr.execute("1", session="nope")
        async with await acr.session(name="ctx") as s:
            assert (await s.execute("1 + 1")).text == "2"
        assert "ctx" not in [x["name"] for x in await acr.sessions()]


def test_async_errors_and_context(gateway):
    asyncio.run(_async_errors(gateway.url, gateway.token))


def test_typed_errors_are_importable_from_the_package():
    import coderunner_cli
    from coderunner_cli import errors

    for name in (
        "SandboxNotRunning",
        "AuthError",
        "SessionNotFound",
        "GatewayError",
        "GatewayUnavailable",
        "ExecutionError",
        "CoderunnerError",
    ):
        assert getattr(coderunner_cli, name) is getattr(errors, name) and name in coderunner_cli.__all__


def test_async_session_works_like_the_sync_twin(gateway):
    with CodeRunner(gateway.url, gateway.token) as cr:
        with cr.session(name="sync-ctx") as s:
            sync = s.execute("2 + 2").text
        assert "sync-ctx" not in [x["name"] for x in cr.sessions()]

    async def main():
        async with AsyncCodeRunner(gateway.url, gateway.token) as acr:
            async with acr.session(name="async-ctx") as s:
                result = (await s.execute("2 + 2")).text
                assert "async-ctx" in [x["name"] for x in await acr.sessions()]
            assert "async-ctx" not in [x["name"] for x in await acr.sessions()]
            kept = await acr.session(name="awaited")  # awaited: lives until deleted
            assert (await kept.execute("3")).text == "3"
            await kept.delete()
            return result

    assert asyncio.run(main()) == sync == "4"


class RawServer:
    """A TCP server that answers each connection with fixed bytes, then closes it."""

    def __init__(self, reply: bytes) -> None:
        import socket
        import threading

        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


def _closed_port_url() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def test_sync_and_async_twins_fail_alike(gateway, tmp_path):
    cut_stream = RawServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'1c\r\n{"type": "start", "sessi'
    )
    hang_up = RawServer(b"")
    cases = [  # (url, token, client timeout, code)
        (_closed_port_url(), None, None, "print(1)"),
        (f"unix:{tmp_path / 'no.sock'}", None, None, "print(1)"),
        (gateway.url, gateway.token, 0.5, "import time; time.sleep(3)"),
        (cut_stream.url, None, None, "print(1)"),
        (hang_up.url, None, None, "print(1)"),
    ]

    def sync_failure(url, token, timeout, code):
        with CodeRunner(url, token, timeout=timeout) as cr, pytest.raises(GatewayError) as info:
            cr.execute(code)
        return type(info.value).__name__, info.value.message, info.value.exit_code

    async def async_failure(url, token, timeout, code):
        async with AsyncCodeRunner(url, token, timeout=timeout) as acr:
            with pytest.raises(GatewayError) as info:
                await acr.execute(code)
        return type(info.value).__name__, info.value.message, info.value.exit_code

    try:
        for case in cases:
            sync = sync_failure(*case)
            assert asyncio.run(async_failure(*case)) == sync, case
            assert sync[0] == "GatewayUnavailable" and sync[2] == 69, sync
        assert "did not answer within 0.5s" in sync_failure(*cases[2])[1]
        assert "connection refused" in sync_failure(*cases[0])[1]
        assert "the connection was closed" in sync_failure(*cases[3])[1]
    finally:
        cut_stream.close()
        hang_up.close()
