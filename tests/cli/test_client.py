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
        r = s.execute("import sys\nprint('a')\nprint('b', file=sys.stderr)\n40 + 2",
                      on_stdout=seen["out"].append, on_stderr=seen["err"].append, on_output=seen["outputs"].append)
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
        with cr.stream("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)") as events:
            for e in events:
                if e["type"] == "stdout":
                    pid = int(e["text"])
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
