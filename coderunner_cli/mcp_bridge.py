"""`coderunner mcp`: an MCP server on stdio that bridges to the running sandbox's /mcp.

For clients that only speak stdio (Claude Desktop, Kiro):
``claude mcp add coderunner -- coderunner mcp``. Tool lists, calls (results,
errors and images unchanged) and progress notifications pass through.
"""

from __future__ import annotations

from typing import Any


async def serve(url: str, token: str | None) -> None:
    import httpx
    import mcp.types as types
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.AsyncHTTPTransport(uds=url[5:]) if url.startswith("unix:") else None
    base = "http://127.0.0.1" if transport else url
    http = httpx.AsyncClient(headers=headers, transport=transport, timeout=httpx.Timeout(30, read=None))
    async with http, streamable_http_client(f"{base}/mcp", http_client=http) as (read, write, _):
        async with ClientSession(read, write) as upstream:
            init = await upstream.initialize()
            # serverInfo as the gateway says it (coderunner's version), not the MCP SDK's default
            info = init.serverInfo
            server: Server[Any, Any] = Server(info.name, version=info.version, instructions=init.instructions)

            @server.list_tools()
            async def list_tools() -> list[types.Tool]:
                return (await upstream.list_tools()).tools

            @server.call_tool(validate_input=False)
            async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
                ctx = server.request_context
                token = ctx.meta.progressToken if ctx.meta else None

                async def forward(progress: float, total: float | None, message: str | None) -> None:
                    if token is not None:
                        await ctx.session.send_progress_notification(token, progress, total, message)

                return await upstream.call_tool(name, arguments, progress_callback=forward)

            async with stdio_server() as (stdin, stdout):
                await server.run(stdin, stdout, server.create_initialization_options())


def run() -> None:
    import anyio

    from .client import CodeRunner, discover

    url, token, _ = discover()
    with CodeRunner(url, token, timeout=5) as cr:
        cr.health()  # fail now, with the CLI's one-line error, if the sandbox is down
    anyio.run(serve, url, token)
