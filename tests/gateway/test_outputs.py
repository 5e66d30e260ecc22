"""What code leaves besides its text: a script's figures, a session's `sys.exit("msg")`, MCP's server version."""

from __future__ import annotations

import asyncio
import base64
from importlib.metadata import version

import coderunner_gateway
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('t')\nplt.show()\nprint('after')\n"


def test_a_script_figure_is_a_display_event(gateway):
    events = gateway.stream(PLOT, filename="plot.py")
    assert events[-1]["status"] == "ok", events
    shown = [e for e in events if e["type"] == "display"]
    assert len(shown) == 1, events
    assert base64.b64decode(shown[0]["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any("non-interactive" in e.get("text", "") for e in events if e["type"] == "stderr")
    r = gateway.execute(PLOT)
    assert [o["type"] for o in r["outputs"]] == ["display"] and r["stdout"] == "after\n"
    # saved without show(): nothing displayed, as with python
    r = gateway.execute("import matplotlib.pyplot as plt\nplt.plot([1])\nplt.savefig('f.png')")
    assert r["outputs"] == [] and r["status"] == "ok"


def test_sys_exit_with_a_message_in_a_session_prints_it(gateway):
    sid = gateway.new_session()
    r = gateway.execute("import sys\nprint('out')\nsys.exit('bad input')", session_id=sid)
    assert (r["status"], r["exit_code"], r["stdout"], r["stderr"]) == ("error", 1, "out\n", "bad input\n"), r
    events = gateway.stream("import sys; sys.exit('streamed')", session_id=sid)
    assert [e["text"] for e in events if e["type"] == "stderr"] == ["streamed\n"]
    r = gateway.execute("import sys; sys.exit(3)", session_id=sid)
    assert (r["exit_code"], r["stderr"]) == (3, "")
    r = gateway.execute("import sys; sys.exit()", session_id=sid)
    assert (r["exit_code"], r["stderr"]) == (0, "")


def test_mcp_server_version_is_coderunners(gateway):
    async def main():
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {gateway.token}"}, timeout=httpx.Timeout(30, read=None)
        ) as http:
            async with streamable_http_client(gateway.url + "/mcp", http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    return await session.initialize()

    init = asyncio.run(main())
    assert init.serverInfo.name == "coderunner"
    assert init.serverInfo.version == coderunner_gateway.__version__
    assert init.serverInfo.version != version("mcp") or coderunner_gateway.__version__ == version("mcp")
