"""Attacks on the gateway over HTTP, each asserting the specific way it now fails.

Every test performs the attack against a real gateway process (real sockets,
real kernels, real Chromium) and checks the status code, error code or memory
bound that stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import descendants, peak_rss_mb

MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def open_fds(pid: int) -> int:
    """The gateway's open file descriptors. It is non-dumpable, so only root may count them."""
    if os.geteuid() != 0:
        pytest.skip("counting the non-dumpable gateway's file descriptors needs root")
    return len(os.listdir(f"/proc/{pid}/fd"))


def gateway_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERUNNER_TOKEN")}
    return {**env, **extra}


def start_tokenless(tmp: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """A gateway with no token on a unix socket, as `up --no-network` runs it."""
    workspace = tmp / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    sock, ready, log = tmp / "gw.sock", tmp / "ready.json", tmp / "gateway.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coderunner_gateway",
            "--uds",
            str(sock),
            "--workspace",
            str(workspace),
            "--ready-file",
            str(ready),
            "--log-level",
            "warning",
            "--pool-size",
            "0",
            *args,
        ],
        env=gateway_env(),
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{log.read_text()}")
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    return proc, sock


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- 1. no token, no TCP --------------------------------------------------------


def test_gateway_without_token_refuses_tcp(tmp_path):
    (tmp_path / "ws").mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coderunner_gateway",
            "--port",
            "0",
            "--workspace",
            str(tmp_path / "ws"),
            "--ready-file",
            str(tmp_path / "ready.json"),
            "--pool-size",
            "0",
        ],
        env=gateway_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("a gateway without a token listened on TCP")
    assert proc.returncode != 0
    assert not (tmp_path / "ready.json").exists()
    last = err.strip().splitlines()[-1]  # one line, after the log's
    assert last.startswith("coderunner-gateway: refusing to listen on TCP without a token"), err
    assert "--uds" in last and "CODERUNNER_TOKEN" in last


def test_gateway_without_token_still_serves_a_unix_socket(tmp_path):
    proc, sock = start_tokenless(tmp_path)
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://coderunner") as c:
            # what the CLI's unix client sends: Host "coderunner", no Origin
            assert c.get("/health").json()["auth"] is False
            assert c.post("/v1/execute", json={"code": "print(6 * 7)"}).json()["stdout"] == "42\n"
    finally:
        stop(proc)


# -- 2. Host and Origin on every route -----------------------------------------

ROUTES = [
    ("GET", "/health"),
    ("POST", "/v1/execute"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/files"),
    ("GET", "/v1/skills"),
    ("POST", "/v1/browser/content"),
    ("POST", "/mcp"),
    ("GET", "/no/such/route"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8222", "localhost.attacker.example", "127.0.0.1.nip.io", ""]
)
def test_foreign_host_is_refused_on_every_route(gateway, method, path, host):
    r = httpx.request(method, gateway.url + path, headers={**gateway.headers, "Host": host}, json={"code": "1"})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "origin",
    [
        "https://attacker.example",
        "null",
        "http://1.2.3.4",
        "http://192.168.64.3:8222",
        "http://localhost.attacker.example",
        "file://",
        "chrome-extension://abc",
    ],
)
def test_foreign_origin_is_refused_on_every_route(gateway, method, path, origin):
    r = httpx.request(method, gateway.url + path, headers={**gateway.headers, "Origin": origin}, json={"code": "1"})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "origin_not_allowed"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "localhost",
        "localhost:{port}",
        "LOCALHOST:{port}",
        "[::1]:{port}",
        "192.168.64.3:8222",
        "10.0.0.7",
        "localhost.",
    ],
)
@pytest.mark.parametrize(
    "origin", [None, "http://localhost:3000", "https://127.0.0.1", "http://[::1]:8080", "http://localhost"]
)
def test_local_hosts_and_origins_pass(gateway, host, origin):
    port = gateway.url.rsplit(":", 1)[1]
    headers = {"Host": host.format(port=port)}
    if origin:
        headers["Origin"] = origin
    assert httpx.get(gateway.url + "/health", headers=headers).status_code == 200
    r = httpx.get(gateway.url + "/v1/sessions", headers={**gateway.headers, **headers})
    assert r.status_code == 200, r.text


def test_cors_simple_post_from_a_web_page_runs_nothing(tmp_path):
    """A page's form/fetch POST (text/plain, no preflight) to a tokenless gateway."""
    proc, sock = start_tokenless(tmp_path)
    marker = tmp_path / "workspace" / "pwned"
    body = json.dumps({"code": "open('pwned', 'w').write('x')"})
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://coderunner") as c:
            for headers in (
                {"Origin": "https://attacker.example", "Host": "127.0.0.1:8222"},
                {"Origin": "null", "Host": "localhost"},
                {"Host": "attacker.example"},
                {"Origin": "https://attacker.example", "Host": "attacker.example"},
            ):
                r = c.post("/v1/execute", content=body, headers={"Content-Type": "text/plain", **headers})
                assert r.status_code == 403, (headers, r.text)
                assert r.json()["error"]["code"] in ("host_not_allowed", "origin_not_allowed")
            assert not marker.exists()
    finally:
        stop(proc)


# -- 3. unauthenticated resource exhaustion ---------------------------------------


def _read_status(s: socket.socket) -> bytes:
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError, OSError):
        pass
    return data


def test_huge_header_is_not_read_before_auth(gateway):
    host, port = gateway.url.rsplit("/", 1)[1].split(":")
    # a header just over the cap gets a clean 431
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n")
        status = _read_status(s)
    assert status.startswith(b"HTTP/1.1 431"), status[:200]

    # 200 MB of header: the gateway hangs up long before, and does not grow
    before = peak_rss_mb(gateway.proc.pid)
    sent = 0
    chunk = b"a" * MB
    with socket.create_connection((host, int(port)), timeout=10) as s:
        try:
            s.sendall(b"GET /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            while sent < 200 * MB:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
    growth = peak_rss_mb(gateway.proc.pid) - before
    assert sent < 32 * MB, f"the gateway read {sent // MB} MB of one header"
    assert growth < 20, f"the gateway grew {growth:.0f} MB"
    assert httpx.get(gateway.url + "/health").status_code == 200


def test_header_limit_counts_a_head_sent_in_pieces_and_not_a_body(gateway):
    host, port = gateway.url.rsplit("/", 1)[1].split(":")
    # a head over the cap, 1 KiB at a time (its blank line never split the count)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        try:
            for _ in range(80):
                s.sendall(b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _read_status(s).startswith(b"HTTP/1.1 431")
    # a 2 MB body in the same write as its head, and a second request pipelined behind it
    code = "print(len(%r))" % ("x" * (2 * MB))
    body = json.dumps({"code": code}).encode()
    head = (
        f"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {gateway.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    second = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head + body + second)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = s.recv(65536)
            assert chunk, data[:300]
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert b'"stdout":"2097152\\n"' in data


def test_half_sent_requests_are_closed_and_capped(gateway_factory):
    gw = gateway_factory("--header-timeout", "2", "--max-connections", "40", "--pool-size", "0")
    host, port = gw.url.rsplit("/", 1)[1].split(":")
    base_fds = open_fds(gw.proc.pid)
    socks = []
    try:
        for _ in range(300):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            socks.append(s)
        time.sleep(0.5)
        held = open_fds(gw.proc.pid) - base_fds
        assert held <= 40 + 5, f"the gateway holds {held} connections beyond its cap of 40"
        # past the header timeout every one of them is closed by the gateway
        time.sleep(3)
        t0 = time.monotonic()
        for s in socks:
            s.settimeout(max(0.1, 5 - (time.monotonic() - t0)))
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            except TimeoutError:
                pytest.fail("a half-sent request is still held open past the header timeout")
            assert data == b"" or data.startswith((b"HTTP/1.1 408", b"HTTP/1.1 503")), data[:100]
        assert open_fds(gw.proc.pid) - base_fds <= 5
    finally:
        for s in socks:
            s.close()
    # and the gateway still answers
    assert httpx.get(gw.url + "/health").status_code == 200
    # a request sent slowly but completely within the timeout is served
    with socket.create_connection((host, int(port)), timeout=10) as s:
        for part in (b"GET /health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            s.sendall(part)
            time.sleep(0.3)
        assert _read_status(s).startswith(b"HTTP/1.1 200")


def test_keep_alive_connection_then_half_sent_request_is_closed(gateway_factory):
    gw = gateway_factory("--header-timeout", "2", "--pool-size", "0")
    host, port = gw.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_status(s).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the second request, never finished
        s.settimeout(8)
        t0 = time.monotonic()
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail("the second half-sent request held the connection")
        assert time.monotonic() - t0 < 6


# -- 4. YAML aliases in SKILL.md --------------------------------------------------

LAUGHS = "\n".join(
    [
        "---",
        "name: laughs",
        "description: ten to the seventh lols",
        'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    + [
        f"a{i}: &a{i} [*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1}]"
        for i in range(1, 7)
    ]
    + ["---", "body"]
)


def test_skill_with_yaml_aliases_does_not_expand(gateway_factory, tmp_path):
    user = tmp_path / "user-skills"
    (user / "laughs").mkdir(parents=True)
    (user / "laughs" / "SKILL.md").write_text(LAUGHS)
    (user / "big").mkdir()
    (user / "big" / "SKILL.md").write_text("---\nname: big\ndescription: large\n---\n" + "x" * (2 * MB))
    (user / "fine").mkdir()
    (user / "fine" / "SKILL.md").write_text("---\nname: fine\ndescription: a fine skill\n---\nbody\n")
    assert len(LAUGHS) < 700
    gw = gateway_factory("--user-skills-dir", str(user), "--pool-size", "0")
    c = gw.client()
    before = peak_rss_mb(gw.proc.pid)
    r = c.get("/v1/skills/laughs")
    assert r.status_code == 404 and r.json()["error"]["code"] == "skill_not_found", r.status_code
    assert len(r.content) < 4096
    r = c.get("/v1/skills/big")
    assert r.status_code == 404 and len(r.content) < 4096
    names = [s["name"] for s in c.get("/v1/skills").json()["skills"]]
    assert "fine" in names and "laughs" not in names and "big" not in names
    assert c.get("/v1/skills/fine").status_code == 200
    growth = peak_rss_mb(gw.proc.pid) - before
    assert growth < 20, f"the gateway grew {growth:.0f} MB"
    log = gw.log.read_text()
    assert "aliases" in log and "laughs" in log


# -- 5. bad input answers 4xx, never 500 -----------------------------------------

LONG = "n" * 300
BAD_EXECUTE = [
    ('{"code": "\\ud800"}', "invalid_unicode"),
    ('{"code": "print(1)", "argv": ["\\udc80"]}', "invalid_unicode"),
    ('{"code": "print(1)", "env": {"A": "\\ud800"}}', "invalid_unicode"),
    ('{"code": "print(1)", "env": {"\\ud800": "x"}}', "invalid_unicode"),
    ('{"code": "print(1)", "stdin": "\\ud800"}', "invalid_unicode"),
    ('{"code": "print(1)", "filename": "\\ud800.py"}', "invalid_unicode"),
    ('{"code": "print(1)", "session_id": "\\ud800"}', "invalid_unicode"),
    ('{"code": "print(1)", "language": "\\ud800"}', "invalid_unicode"),
    ('{"code": "print(1)", "argv": ["a\\u0000b"]}', "invalid_field"),
    ('{"code": "print(1)", "env": {"A": "a\\u0000"}}', "invalid_field"),
    ('{"code": "print(1)", "env": {"A\\u0000": "x"}}', "invalid_field"),
    ('{"code": "print(1)", "env": {"A=B": "x"}}', "invalid_field"),
    ('{"code": "print(1)", "env": {"": "x"}}', "invalid_field"),
    ('{"code": "print(1)", "filename": "a\\u0000.py"}', "invalid_field"),
    (json.dumps({"code": "print(1)", "filename": LONG + ".py"}), "invalid_field"),
    (json.dumps({"code": "print(1)", "argv": ["x" * 200_000]}), "invalid_field"),
    (json.dumps({"code": "print(1)", "argv": ["x" * 1000] * 3000}), "invalid_field"),
    (json.dumps({"code": "print(1)", "env": {"K": "v" * 200_000}}), "invalid_field"),
    ("[" * 100_000 + "]" * 100_000, "invalid_json"),
    ('{"code": ' + "[" * 100_000 + "]" * 100_000 + "}", "invalid_json"),
    ('{"code": "print(1)", "argv": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}", "invalid_json"),
    (b'{"code": "\xed\xa0\x80"}', "invalid_unicode"),  # a surrogate encoded as UTF-8
    (b'{"code": "\xff"}', "invalid_json"),
]


@pytest.mark.parametrize(("body", "code"), BAD_EXECUTE, ids=range(len(BAD_EXECUTE)))
def test_bad_execute_input_is_a_400(gateway, body, code):
    r = gateway.client().post("/v1/execute", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == code


BAD_OTHER = [
    ("POST", "/v1/sessions", '{"name": "\\ud800"}', 400, "invalid_unicode"),
    ("POST", "/v1/sessions", json.dumps({"name": LONG}), 400, "invalid_field"),
    ("POST", "/v1/sessions", '{"name": "a\\u0000"}', 400, "invalid_field"),
    ("POST", "/v1/sessions", "[" * 100_000, 400, "invalid_json"),
    ("PUT", "/v1/files/" + LONG, b"data", 400, "invalid_path"),
    ("PUT", "/v1/files/" + "/".join(["d" * 200] * 30), b"data", 400, "invalid_path"),
    ("GET", "/v1/files/" + LONG, None, 400, "invalid_path"),
    ("DELETE", "/v1/files/" + LONG, None, 400, "invalid_path"),
    ("GET", "/v1/files/a%00b", None, 400, "invalid_path"),
    ("GET", "/v1/sessions/" + LONG, None, 404, "session_not_found"),
    ("GET", "/v1/skills/%ED%A0%80", None, 400, "invalid_skill_name"),
    ("GET", "/v1/skills/pdf-text-replace/files/" + LONG, None, 404, "file_not_found"),
    ("POST", "/v1/browser/content", '{"url": "http://\\ud800/"}', 400, "invalid_unicode"),
    ("POST", "/v1/browser/content", '{"url": "http://a\\u0000b/"}', 400, "invalid_url"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_OTHER, ids=range(len(BAD_OTHER)))
def test_bad_input_elsewhere_is_a_4xx(gateway, method, path, body, status, code):
    r = gateway.client().request(method, path, content=body)
    assert r.status_code == status, r.text[:300]
    assert r.json()["error"]["code"] == code


def test_env_and_argv_within_limits_still_work(gateway):
    r = gateway.execute(
        "import os, sys; print(len(sys.argv[1]), os.environ['K'][:3])",
        argv=["a" * 100_000],
        env={"K": "v\u00e9\u00e9" * 1000},
    )
    assert r["stdout"] == "100000 v\u00e9\u00e9\n", r


# -- 6. big files -----------------------------------------------------------------


def test_sparse_file_is_streamed_not_loaded(gateway_factory):
    gw = gateway_factory("--pool-size", "0")
    big = gw.workspace / "sparse.bin"
    with open(big, "wb") as f:
        f.truncate(2 << 30)
    try:
        before = peak_rss_mb(gw.proc.pid)
        total = 0
        with gw.client(timeout=120).stream("GET", "/v1/files/sparse.bin") as r:
            assert r.status_code == 200
            assert r.headers["content-length"] == str(2 << 30)
            for chunk in r.iter_raw(1 << 20):
                total += len(chunk)
        assert total == 2 << 30
        growth = peak_rss_mb(gw.proc.pid) - before
        assert growth < 100, f"the gateway grew {growth:.0f} MB serving a 2 GiB file"

        # MCP read_file refuses past its limit, as a tool error
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async def main():
            async with httpx.AsyncClient(headers=gw.headers, timeout=httpx.Timeout(60, read=None)) as http:
                async with streamable_http_client(gw.url + "/mcp", http_client=http) as (read, write, _):
                    async with ClientSession(read, write) as s:
                        await s.initialize()
                        return (
                            await s.call_tool("read_file", {"path": "sparse.bin"}),
                            await s.call_tool("read_file", {"path": "small.txt"}),
                        )

        (gw.workspace / "small.txt").write_text("small text")
        big_result, small_result = asyncio.run(main())
        assert big_result.isError
        text = "\n".join(c.text for c in big_result.content if c.type == "text")
        assert "too large" in text and "GET /v1/files" in text
        assert not small_result.isError and small_result.content[0].text == "small text"
        growth = peak_rss_mb(gw.proc.pid) - before
        assert growth < 100, f"the gateway grew {growth:.0f} MB"
    finally:
        big.unlink()


# -- 7. MCP clients that leave release their kernels --------------------------------


def test_mcp_clients_that_leave_release_their_kernels(gateway_factory):
    gw = gateway_factory("--max-sessions", "3", "--pool-size", "1", "--mcp-idle-timeout", "2")
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def visit(polite: bool) -> str:
        async with httpx.AsyncClient(headers=gw.headers, timeout=httpx.Timeout(60, read=None)) as http:
            async with streamable_http_client(gw.url + "/mcp", http_client=http, terminate_on_close=polite) as (
                read,
                write,
                _,
            ):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    r = await s.call_tool("execute_python_code", {"command": "print('here')"})
                    return "\n".join(c.text for c in r.content if c.type == "text")

    c = gw.client()

    def released_within(seconds: float) -> None:
        t0 = time.monotonic()
        while c.get("/v1/sessions").json()["sessions"]:
            assert time.monotonic() - t0 < seconds, "MCP sessions kept their kernels"
            time.sleep(0.1)

    # polite clients (DELETE /mcp at the end) give their kernel back at once
    for _ in range(5):
        assert asyncio.run(visit(True)).strip() == "here"
        released_within(1.5)  # before the 2 s idle timeout could have done it
    # clients that just vanish give it back after the MCP idle timeout (2 s here)
    for _ in range(2):
        for _ in range(3):
            assert asyncio.run(visit(False)).strip() == "here"
        released_within(20)
    r = c.post("/v1/sessions", json={})
    assert r.status_code == 201, r.text


# -- 8. a fast session stream does not grow the gateway -------------------------------

FLOOD_MB = 300
FLOOD = f"import sys\nchunk = 'x' * (1 << 20)\nfor _ in range({FLOOD_MB}):\n    sys.stdout.write(chunk)\n"


def test_session_stream_flood_is_bounded(gateway_factory):
    gw = gateway_factory("--pool-size", "1")
    sid = gw.new_session()
    gw.execute("print('warm')", session_id=sid)
    before = peak_rss_mb(gw.proc.pid)
    received, done = 0, None
    with gw.client(timeout=300).stream(
        "POST", "/v1/execute", json={"code": FLOOD, "session_id": sid}, headers={"Accept": "application/x-ndjson"}
    ) as r:
        for line in r.iter_lines():
            e = json.loads(line)
            if e["type"] == "stdout":
                received += len(e["text"])
            elif e["type"] == "done":
                done = e
    growth = peak_rss_mb(gw.proc.pid) - before
    assert done is not None and done["status"] == "ok", done
    dropped = (done.get("dropped") or {}).get("stdout", 0)
    assert received + dropped == FLOOD_MB * MB, (received, dropped)
    assert growth < 200, f"the gateway grew {growth:.0f} MB for a {FLOOD_MB} MB session stream"
    # a slow reader: the gateway drops (and says so) instead of queueing
    before = peak_rss_mb(gw.proc.pid)
    received, done = 0, None
    with gw.client(timeout=300).stream(
        "POST", "/v1/execute", json={"code": FLOOD, "session_id": sid}, headers={"Accept": "application/x-ndjson"}
    ) as r:
        for line in r.iter_lines():
            e = json.loads(line)
            if e["type"] == "stdout":
                received += len(e["text"])
                time.sleep(0.002)
            elif e["type"] == "done":
                done = e
    growth = peak_rss_mb(gw.proc.pid) - before
    assert done["status"] == "ok" and done["dropped"]["stdout"] > 0, done
    assert received + done["dropped"]["stdout"] == FLOOD_MB * MB
    assert growth < 200, f"the gateway grew {growth:.0f} MB for a slowly read session stream"
    assert gw.execute("print('after')", session_id=sid)["stdout"] == "after\n"


# -- 9. Chromium memory -------------------------------------------------------------

HOG_JS = """<html><head><title>hog</title></head><body><p>hog</p><script>
const keep = []; for (let i = 0; i < 1500; i++) { keep.push(new Array(1 << 17).fill(i + 0.5)); }
document.body.append('allocated ' + keep.length);
</script></body></html>"""


class HogSite(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/js":
            data = HOG_JS.encode()
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(100 * MB + 30))
            self.end_headers()
            try:
                self.wfile.write(b"<html><body><p>")
                line = (b"word " * 200 + b"<br>\n") * 1000
                for _ in range(100 * MB // len(line)):
                    self.wfile.write(line)
                self.wfile.write(b" " * (100 * MB - (100 * MB // len(line)) * len(line)) + b"</p></body></html>")
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        else:
            data = b"<html><head><title>fine</title></head><body><p>still fine</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_chromium_memory_is_bounded(gateway_factory):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HogSite)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}"
    gw = gateway_factory("--pool-size", "0")
    c = gw.client(timeout=180)
    peak = {"browser": 0.0, "gateway": 0.0}
    stop_watch = threading.Event()

    def watch():
        while not stop_watch.is_set():
            kids = descendants(gw.proc.pid)
            biggest = max((rss_mb(p) for p in kids), default=0.0)
            peak["browser"] = max(peak["browser"], biggest)
            time.sleep(0.05)

    try:
        assert c.post("/v1/browser/content", json={"url": site + "/fine"}).json()["content"] == "still fine"
        gw_before = peak_rss_mb(gw.proc.pid)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for path in ("/js", "/huge"):
            r = c.post("/v1/browser/content", json={"url": site + path, "timeout": 120})
            assert r.status_code in (413, 502, 503, 507), (path, r.status_code, r.text[:300])
            assert r.json()["error"]["code"] in ("page_too_large", "page_crashed", "page_out_of_memory"), r.text[:300]
            # the browser stays usable
            r = c.post("/v1/browser/content", json={"url": site + "/fine"})
            assert r.status_code == 200 and r.json()["content"] == "still fine", r.text[:300]
        stop_watch.set()
        watcher.join()
        assert peak["browser"] < 1200, f"a browser process grew to {peak['browser']:.0f} MB"
        growth = peak_rss_mb(gw.proc.pid) - gw_before
        assert growth < 100, f"the gateway grew {growth:.0f} MB"
    finally:
        stop_watch.set()
        server.shutdown()


def test_token_is_required_even_with_local_host(gateway):
    # the Host/Origin check is in addition to the token, never instead of it
    r = httpx.post(gateway.url + "/v1/execute", json={"code": "1"}, headers={"Host": "localhost"})
    assert r.status_code == 401
