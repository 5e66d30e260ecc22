"""`coderunner mcp` on stdio, driven by the SDK's stdio client, bridged to a real gateway."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from coderunner_gateway import __version__ as gateway_version
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def test_stdio_bridge(gateway, tmp_path):
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CODERUNNER_URL": gateway.url,
        "CODERUNNER_TOKEN": gateway.token,
        "CODERUNNER_HOME": str(tmp_path),
    }
    params = StdioServerParameters(command="coderunner", args=["mcp"], env=env)
    seen: list[str] = []

    async def progress(value, total, message):
        seen.append(message)

    async def main():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            init = await s.initialize()
            tools = {t.name for t in (await s.list_tools()).tools}
            await s.call_tool("execute_python_code", {"command": "kept = 'yes'"})
            kept = await s.call_tool("execute_python_code", {"command": "print(kept)"}, progress_callback=progress)
            fig = await s.call_tool(
                "execute_python_code", {"command": "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()"}
            )
            err = await s.call_tool("execute_python_code", {"command": "raise ValueError('nope')"})
            return init, tools, kept, fig, err

    init, tools, kept, fig, err = asyncio.run(main())
    assert "sandbox" in (init.instructions or "")
    assert init.serverInfo.name == "coderunner"
    assert init.serverInfo.version == gateway_version  # the gateway's, as /mcp says it, not the MCP SDK's
    assert {"execute_python_code", "list_skills", "read_file"} <= tools
    assert kept.content[0].text == "yes\n"
    assert "yes\n" in "".join(seen)
    assert any(c.type == "image" and c.mimeType == "image/png" for c in fig.content)
    assert err.isError and "ValueError: nope" in err.content[0].text


def test_stdio_bridge_without_a_sandbox_is_one_line(tmp_path):
    import subprocess

    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CODERUNNER_HOME": str(tmp_path)}
    r = subprocess.run(
        ["coderunner", "mcp"], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30
    )
    assert r.returncode == 3
    assert r.stderr == "coderunner: the sandbox is not running: start it with `coderunner up`\n"
