"""Bytes in, bytes out: a script's stdin, stdout and stderr are byte-exact through the HTTP API.

Bytes that are not UTF-8 travel as base64 (`stdin_b64`; events' `b64`; results'
`stdout_b64`/`stderr_b64`); valid UTF-8 keeps the text fields old clients read.
"""

from __future__ import annotations

import base64
import json
import os

import pytest

ECHO = (
    "import sys\ndata = sys.stdin.buffer.read()\nsys.stdout.buffer.write(data)\nsys.stderr.buffer.write(data[::-1])\n"
)
MB = 1 << 20


def joined(events: list[dict], stream: str) -> bytes:
    """What a byte-exact client does: `b64` when there, else the text as UTF-8."""
    out = b""
    for e in events:
        if e["type"] == stream:
            out += base64.b64decode(e["b64"]) if "b64" in e else e["text"].encode()
    return out


def field_bytes(result: dict, stream: str) -> bytes:
    if f"{stream}_b64" in result:
        return base64.b64decode(result[f"{stream}_b64"])
    return result[stream].encode()


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(MB)


def test_megabyte_of_random_bytes_each_way_json(gateway, payload):
    r = gateway.execute(ECHO, stdin_b64=base64.b64encode(payload).decode(), timeout=60)
    assert r["status"] == "ok", r
    assert not r["truncated"]
    assert field_bytes(r, "stdout") == payload
    assert field_bytes(r, "stderr") == payload[::-1]
    # the text fields stay for display: the bytes that are not UTF-8 shown as U+FFFD
    assert r["stdout"] == payload.decode("utf-8", "replace")


def test_megabyte_of_random_bytes_each_way_ndjson(gateway, payload):
    events = gateway.stream(ECHO, stdin_b64=base64.b64encode(payload).decode(), timeout=60)
    assert events[-1]["status"] == "ok", events[-1]
    assert joined(events, "stdout") == payload
    assert joined(events, "stderr") == payload[::-1]
    assert all("text" in e for e in events if e["type"] in ("stdout", "stderr"))  # old clients keep working


def test_stdin_that_is_not_utf8_reaches_the_script(gateway):
    r = gateway.execute("import sys; print(sys.stdin.buffer.read())", stdin_b64=base64.b64encode(b"\xffabc").decode())
    assert r["status"] == "ok", r
    assert r["stdout"] == "b'\\xffabc'\n"
    assert "stdout_b64" not in r
    # text stdin as before; both at once, or base64 that is not, are refused
    assert gateway.execute("print(input())", stdin="héllo\n")["stdout"] == "héllo\n"
    r = gateway.client().post("/v1/execute", json={"code": "1", "stdin": "a", "stdin_b64": "YQ=="})
    assert r.status_code == 400 and "not both" in r.json()["error"]["message"]
    r = gateway.client().post("/v1/execute", json={"code": "1", "stdin_b64": "not base64!"})
    assert r.status_code == 400 and "must be base64" in r.json()["error"]["message"]


def test_stdout_not_utf8_json_and_stream(gateway):
    code = "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe'); sys.stdout.flush()"
    r = gateway.execute(code)
    assert base64.b64decode(r["stdout_b64"]) == b"ok \xff\xfe"
    assert r["stdout"] == "ok \ufffd\ufffd"
    events = gateway.stream(code)
    assert joined(events, "stdout") == b"ok \xff\xfe"
    # UTF-8 written a byte at a time stays text: a character is never cut into base64
    code = (
        "import sys, time\nb = 'é€😀'.encode()\nfor i in range(len(b)):\n"
        "    sys.stdout.buffer.write(b[i:i + 1]); sys.stdout.flush(); time.sleep(0.01)\n"
    )
    out = [e for e in gateway.stream(code) if e["type"] == "stdout"]
    assert all("b64" not in e for e in out), out
    assert "".join(e["text"] for e in out) == "é€😀"
    r = gateway.execute(code)
    assert r["stdout"] == "é€😀" and "stdout_b64" not in r


def test_a_large_stdout_is_answered_as_it_is_written(gateway):
    """Past 256 KiB, a script's JSON answer starts while it runs (stdout first, the rest at the
    end): the client reads while the output is made, and the answer is the same JSON."""
    import json
    import time

    code = (
        "import sys, time\nsys.stdout.write('a' * (1 << 20)); sys.stdout.flush()\n"
        "print('to stderr', file=sys.stderr)\ntime.sleep(1.5)\nsys.stdout.write('b' * 1000 + 'é')\nsys.exit(3)"
    )
    t0 = time.monotonic()
    with gateway.client().stream("POST", "/v1/execute", json={"code": code}) as r:
        chunks = r.iter_bytes()
        first = next(chunks)
        first_at = time.monotonic() - t0
        body = first + b"".join(chunks)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert first_at < 1.2, f"the answer began only after the script ended ({first_at:.2f}s)"
    result = json.loads(body)
    assert result["stdout"] == "a" * (1 << 20) + "b" * 1000 + "é"
    assert (result["status"], result["exit_code"], result["stderr"]) == ("error", 3, "to stderr\n")
    assert result["truncated"] is False and "stdout_b64" not in result


def test_a_large_stdout_that_is_not_utf8_or_over_the_cap_keeps_its_bytes_and_counts(gateway_factory):
    gw = gateway_factory("--max-output-bytes", str(600 << 10), "--pool-size", "0")
    raw = b"x" * (300 << 10) + b"\xed\xa0\x80" + b"\xff" + b"y" * (400 << 10)  # a surrogate, a stray byte
    code = f"import sys; sys.stdout.buffer.write({raw!r}); sys.stdout.flush()"
    r = gw.execute(code)
    kept = raw[: 600 << 10]
    assert r["truncated"] is True and r["dropped"]["stdout"] == len(raw) - len(kept), r["dropped"]
    assert base64.b64decode(r["stdout_b64"]) == kept
    assert r["stdout"] == kept.decode("utf-8", "replace")


def test_a_client_leaving_a_streamed_answer_ends_the_script(gateway):
    import socket
    import time

    marker = gateway.workspace / "still-running"
    code = (
        "import sys, time, pathlib\nsys.stdout.write('z' * (1 << 20)); sys.stdout.flush()\n"
        f"time.sleep(3)\npathlib.Path({str(marker)!r}).write_text('yes')"
    )
    body = json.dumps({"code": code}).encode()
    host, port = gateway.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {gateway.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert s.recv(65536).startswith(b"HTTP/1.1 200")  # the answer has begun
    time.sleep(4.5)
    assert not marker.exists(), "the script ran on after its client left"


def test_any_buffer_written_to_stdout_comes_whole(gateway):
    """sys.stdout.buffer takes any buffer, as a file does: the bootstrap sends it without
    copying where it can, and as its bytes where it cannot (strided, or not of bytes)."""
    code = (
        "import array, sys\n"
        "w = sys.stdout.buffer.write\n"
        "n = [w(memoryview(b'a-b-c-')[::2]), w(array.array('i', [0x44434241])), w(bytearray(b'\\n')),\n"
        "     w(memoryview(b'x' * (3 << 20))[1:]), w(b'')]\n"
        "sys.stderr.write(repr(n))\n"
    )
    out = gateway.execute(code)
    assert out["stdout"] == "abc" + "ABCD" + "\n" + "x" * ((3 << 20) - 1)
    assert out["stderr"] == repr([3, 4, 1, (3 << 20) - 1, 0])


def test_a_large_streamed_stdout_with_escapes_and_wide_characters_comes_exact(gateway):
    """Over a MiB of text that JSON must escape and that UTF-8 spreads over 1 to 4 bytes: the
    streamed answer encodes it in pieces, and the pieces join to the exact text."""
    code = "import sys\nsys.stdout.write(('a\"\\\\\\n\\t\\x01é€😀' * 200_000) + 'end')\n"
    out = gateway.execute(code)
    assert out["stdout"] == 'a"\\\n\t\x01é€😀' * 200_000 + "end"
    assert "stdout_b64" not in out
