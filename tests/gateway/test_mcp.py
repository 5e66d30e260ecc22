"""MCP through the SDK's own client over streamable HTTP: tools, state, images, errors, progress, guards."""

from __future__ import annotations

import asyncio
import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TOOLS = {
    "execute_python_code",
    "navigate_and_get_all_visible_text",
    "list_skills",
    "get_skill_info",
    "get_skill_file",
    "reset_session",
    "read_file",
    "write_file",
}


def run(gw, fn):
    async def main():
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {gw.token}"}, timeout=httpx.Timeout(30, read=None)
        ) as http:
            async with streamable_http_client(gw.url + "/mcp", http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await fn(session)

    return asyncio.run(main())


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_tools_listed(gateway):
    tools = run(gateway, lambda s: s.list_tools())
    assert TOOLS <= {t.name for t in tools.tools}


def test_state_images_errors_in_one_client(gateway):
    async def scenario(s: ClientSession):
        r1 = await s.call_tool("execute_python_code", {"command": "x = 41\nprint('set')"})
        r2 = await s.call_tool("execute_python_code", {"command": "x + 1"})
        fig = await s.call_tool(
            "execute_python_code", {"command": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"}
        )
        err = await s.call_tool("execute_python_code", {"command": "print('before')\n1/0"})
        reset = await s.call_tool("reset_session", {})
        after = await s.call_tool("execute_python_code", {"command": "print(x)"})
        return r1, r2, fig, err, reset, after

    r1, r2, fig, err, reset, after = run(gateway, scenario)
    assert not r1.isError and text_of(r1) == "set\n"
    assert text_of(r2).strip() == "42"
    images = [c for c in fig.content if c.type == "image"]
    assert len(images) == 1 and images[0].mimeType == "image/png"
    assert base64.b64decode(images[0].data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert err.isError and "before" in text_of(err) and "ZeroDivisionError" in text_of(err)
    assert not reset.isError
    assert after.isError and "NameError" in text_of(after)


def test_each_client_has_its_own_session(gateway):
    run(gateway, lambda s: s.call_tool("execute_python_code", {"command": "mine = 1"}))
    other = run(gateway, lambda s: s.call_tool("execute_python_code", {"command": "mine"}))
    assert other.isError and "NameError" in text_of(other)


def test_output_streams_as_progress(gateway):
    seen: list[str] = []

    async def progress(value, total, message):
        seen.append(message)

    async def scenario(s: ClientSession):
        code = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.2)"
        return await s.call_tool("execute_python_code", {"command": code}, progress_callback=progress)

    result = run(gateway, scenario)
    assert text_of(result) == "tick 0\ntick 1\ntick 2\n"
    assert "".join(seen) == "tick 0\ntick 1\ntick 2\n" and len(seen) >= 3


def test_skills_and_files(gateway):
    async def scenario(s: ClientSession):
        skills = await s.call_tool("list_skills", {})
        info = await s.call_tool("get_skill_info", {"skill_name": "pdf-text-replace"})
        f = await s.call_tool(
            "get_skill_file", {"skill_name": "pdf-text-replace", "filename": "scripts/replace_text.py"}
        )
        escape = await s.call_tool(
            "get_skill_file", {"skill_name": "pdf-text-replace", "filename": "../../../etc/passwd"}
        )
        missing = await s.call_tool("get_skill_info", {"skill_name": "nope"})
        wrote = await s.call_tool("write_file", {"path": "notes/a.txt", "content": "hello"})
        read = await s.call_tool("read_file", {"path": "notes/a.txt"})
        outside = await s.call_tool("read_file", {"path": "../../etc/passwd"})
        used = await s.call_tool("execute_python_code", {"command": "print(open('notes/a.txt').read())"})
        return skills, info, f, escape, missing, wrote, read, outside, used

    skills, info, f, escape, missing, wrote, read, outside, used = run(gateway, scenario)
    assert "image-crop-rotate" in text_of(skills)
    assert "replace_text.py" in text_of(info)
    assert "def main" in text_of(f)
    assert escape.isError and "root:" not in text_of(escape)
    assert missing.isError
    assert not wrote.isError and text_of(read) == "hello"
    assert outside.isError and "leaves the workspace" in text_of(outside)
    assert text_of(used) == "hello\n"


def test_file_tools_take_a_name_of_255_bytes(gateway):
    name = "n" * 255

    async def scenario(s: ClientSession):
        wrote = await s.call_tool("write_file", {"path": f"mcp-long/{name}", "content": "long"})
        return wrote, await s.call_tool("read_file", {"path": f"mcp-long/{name}"})

    wrote, read = run(gateway, scenario)
    assert not wrote.isError, text_of(wrote)
    assert text_of(read) == "long" and (gateway.workspace / "mcp-long" / name).read_text() == "long"


def test_write_file_says_when_a_file_is_in_the_way(gateway):
    async def scenario(s: ClientSession):
        await s.call_tool("write_file", {"path": "mcp-plain", "content": "x"})
        return await s.call_tool("write_file", {"path": "mcp-plain/child.txt", "content": "y"})

    result = run(gateway, scenario)
    assert result.isError and "'mcp-plain' is a file, not a folder" in text_of(result)
    assert str(gateway.workspace) not in text_of(result)


def test_file_tools_and_links(gateway, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    (gateway.workspace / "mcp-target.txt").write_text("inside")
    (gateway.workspace / "mcp-alias.txt").symlink_to("mcp-target.txt")
    (gateway.workspace / "mcp-out.txt").symlink_to(outside)

    async def scenario(s: ClientSession):
        read = await s.call_tool("read_file", {"path": "mcp-alias.txt"})
        wrote = await s.call_tool("write_file", {"path": "mcp-alias.txt", "content": "changed"})
        out_read = await s.call_tool("read_file", {"path": "mcp-out.txt"})
        out_write = await s.call_tool("write_file", {"path": "mcp-out.txt", "content": "overwritten"})
        return read, wrote, out_read, out_write

    read, wrote, out_read, out_write = run(gateway, scenario)
    assert text_of(read) == "inside" and not wrote.isError  # a link inside: its target, the link kept
    assert (gateway.workspace / "mcp-alias.txt").is_symlink()
    assert (gateway.workspace / "mcp-target.txt").read_text() == "changed"
    assert out_read.isError and "outside" not in text_of(out_read).replace("leaves the workspace", "")
    assert out_write.isError and outside.read_text() == "outside"


class Page(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"<html><head><title>MCP page</title></head><body><p>visible words</p><script>x='hidden'</script></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="no chromium")
def test_navigate_tool(gateway):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = run(gateway, lambda s: s.call_tool("navigate_and_get_all_visible_text", {"url": url}))
        assert "visible words" in text_of(result) and "MCP page" in text_of(result) and "hidden" not in text_of(result)
        bad = run(gateway, lambda s: s.call_tool("navigate_and_get_all_visible_text", {"url": "file:///etc/passwd"}))
        assert bad.isError and "http" in text_of(bad)
    finally:
        server.shutdown()


def test_navigate_tool_refuses_a_malformed_url(gateway):
    # checked before the browser is used: no chromium needed
    bad = run(gateway, lambda s: s.call_tool("navigate_and_get_all_visible_text", {"url": "http://[::1"}))
    assert bad.isError and "not a valid URL" in text_of(bad)


def test_token_host_and_origin_are_checked(gateway):
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    r = httpx.post(gateway.url + "/mcp", json=init, headers=headers)
    assert r.status_code == 401
    auth = {**headers, "Authorization": f"Bearer {gateway.token}"}
    r = httpx.post(gateway.url + "/mcp", json=init, headers={**auth, "Host": "attacker.example:8222"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"
    r = httpx.post(gateway.url + "/mcp", json=init, headers={**auth, "Origin": "https://attacker.example"})
    assert r.status_code == 403
    r = httpx.post(gateway.url + "/mcp", json=init, headers={**auth, "Origin": "http://localhost:3000"})
    assert r.status_code == 200
