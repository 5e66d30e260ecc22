"""The MCP server at ``/mcp`` (official ``mcp`` SDK, streamable HTTP).

Each MCP client session gets its own coderunner session (a kernel), so state
persists across ``execute_python_code`` calls; the kernel is released when the
MCP session ends (the client's DELETE, or ``--mcp-idle-timeout`` without a
request). Output is streamed as progress notifications while the code runs;
the result carries stdout, stderr and the error as text and figures as image
content. A failure is a tool error.

Host and Origin are checked on every route, ``/mcp`` included (api.guards.HostOriginGuard);
the token is required as on every route.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.fastmcp import Context, FastMCP, Image
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from . import __version__, files
from .browser import check_url
from .errors import ApiError, SessionNotFound
from .events import Collector
from .request import ExecuteRequest

if TYPE_CHECKING:
    from .gateway import Gateway
    from .sessions import Session

INSTRUCTIONS = """Runs code in a sandbox on the user's machine. execute_python_code keeps state between calls
(a Jupyter kernel per MCP session; reset_session starts afresh); matplotlib figures come back as images.
Skills (list_skills, get_skill_info, get_skill_file) are folders of instructions and scripts you can run with
execute_python_code. read_file/write_file work in the sandbox's workspace."""


log = logging.getLogger("coderunner_gateway")

MAX_READ_BYTES = 10 * 1024 * 1024  # read_file and get_skill_file return text whole: past this, refused


@dataclass
class Owned:
    """The coderunner session an MCP session was given (its lifespan context, seen by its tools)."""

    sid: str | None = None


class _ProgressSink(Collector):
    """Aggregates like the JSON API, and reports each output chunk as MCP progress."""

    def __init__(self, max_bytes: int, ctx: Any) -> None:
        super().__init__(max_bytes)
        self.ctx = ctx
        self.chunks = 0

    async def emit(self, event: dict[str, Any]) -> None:
        await super().emit(event)
        if event["type"] in ("stdout", "stderr"):
            self.chunks += 1
            try:
                await self.ctx.report_progress(self.chunks, None, event["text"])
            except Exception:  # a client that cannot take progress still gets the result
                pass


def _read_at_most(path: Path, limit: int) -> bytes | int:
    """The bytes of ``path``, or its size when that is over ``limit``."""
    with open(path, "rb") as f:
        if (size := os.fstat(f.fileno()).st_size) > limit:
            return size
        data = f.read(limit + 1)  # it may have grown since
    return len(data) if len(data) > limit else data


def _too_large(path: str, size: int) -> ToolError:
    return ToolError(
        f"{path!r} is too large ({size} bytes) to return through MCP (the limit is {MAX_READ_BYTES} "
        "bytes): read a part of it with execute_python_code, or download it with GET /v1/files/{path}"
    )


def build(gw: Gateway, *, idle_timeout: float = 600.0) -> FastMCP:
    options: dict[str, Any] = {}
    if "session_idle_timeout" in inspect.signature(FastMCP.__init__).parameters:
        options["session_idle_timeout"] = idle_timeout  # the SDK ends MCP sessions left idle this long

    @contextlib.asynccontextmanager
    async def mcp_session(server: FastMCP) -> AsyncIterator[Owned]:
        # entered once per MCP session (the low-level server's run): whatever ends it (DELETE,
        # idle timeout, a crash), the kernel it was given goes with it
        owned = Owned()
        try:
            yield owned
        finally:
            if owned.sid is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(SessionNotFound):
                    await gw.sessions.delete(owned.sid)
                    log.info("MCP session ended: session %s released", owned.sid)

    server = FastMCP(
        "coderunner",
        instructions=INSTRUCTIONS,
        streamable_http_path="/mcp",
        # checked by api.guards.HostOriginGuard, which also allows container IPs
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        lifespan=mcp_session,
        **options,
    )
    server._mcp_server.version = __version__  # serverInfo.version: ours, not the SDK's
    # registered in this order: it is the order clients list them in
    _code_tools(server, gw)
    _browser_tools(server, gw)
    _skill_tools(server, gw)
    _file_tools(server, gw)
    return server


async def _client_session(gw: Gateway, ctx: Context) -> Session:
    """The coderunner session of the MCP session ``ctx`` is in: made on its first use."""
    owned = ctx.request_context.lifespan_context
    if not isinstance(owned, Owned):  # not under mcp_session (cannot happen with the SDK's transport)
        owned = Owned()
    sid = owned.sid
    if sid is not None and sid in gw.sessions.sessions:
        return gw.sessions.sessions[sid]
    session = await gw.sessions.create(None, "python")
    owned.sid = session.id
    return session


def _fail(exc: ApiError) -> ToolError:
    return ToolError(exc.message)


def _execution_content(result: dict[str, Any]) -> list[Any]:
    """An aggregated execution as MCP content (text, then images); a failure raises a tool error."""
    parts: list[Any] = []
    text = []
    if result["stdout"]:
        text.append(result["stdout"])
    if result["stderr"]:
        text.append(f"[stderr]\n{result['stderr']}")
    images = []
    for out in result["outputs"]:
        data = out["data"]
        if "image/png" in data:
            images.append(Image(data=base64.b64decode(data["image/png"]), format="png"))
        elif "text/plain" in data:
            text.append(data["text/plain"])
    if result.get("message"):
        text.append(f"[{result['status']}] {result['message']}")
    if result["status"] != "ok":
        err = result["error"]
        detail = "\n".join(err["traceback"]) if err else f"exit code {result['exit_code']}"
        raise ToolError("\n".join([*text, detail]).strip())
    parts.append("\n".join(text) if text else "[no output]")
    return [*parts, *images]


def _code_tools(server: FastMCP, gw: Gateway) -> None:
    @server.tool(structured_output=False)  # text and image content, not a JSON document
    async def execute_python_code(command: str, ctx: Context) -> list[Any]:
        """Run Python code in this conversation's persistent Jupyter kernel (variables, imports and files
        persist between calls). Returns stdout, stderr, the value of the last expression, and figures
        (call plt.show()) as images."""
        if not command.strip():
            raise ToolError("command is empty: send the code to run")
        session = await _client_session(gw, ctx)
        sink = _ProgressSink(gw.settings.max_output_bytes, ctx)
        req = ExecuteRequest(code=command, timeout=gw.settings.default_timeout, session=session)
        await gw.run(sink, req, output_limit=sink.max_bytes)
        return _execution_content(sink.result())

    @server.tool()
    async def reset_session(ctx: Context) -> str:
        """Forget all state: this conversation's kernel is restarted."""
        session = await _client_session(gw, ctx)
        await gw.sessions.restart(session.id)
        return "the session was reset: all variables and imports are gone"


def _browser_tools(server: FastMCP, gw: Gateway) -> None:
    @server.tool()
    async def navigate_and_get_all_visible_text(url: str) -> str:
        """Open an http(s) URL in the sandbox's headless Chromium and return the page's visible text."""
        try:
            page = await gw.browser.navigate(check_url(url))
        except ApiError as exc:
            raise _fail(exc) from exc
        return f"# {page['title']}\n{page['url']}\n\n{page['content']}"


def _skill_tools(server: FastMCP, gw: Gateway) -> None:
    @server.tool()
    async def list_skills() -> str:
        """The skills available: name and description of each."""
        skills = await asyncio.to_thread(gw.skills.all_skills)
        return json.dumps([s.summary() for s in skills], indent=2)

    @server.tool()
    async def get_skill_info(skill_name: str) -> str:
        """A skill's instructions (SKILL.md), its files, and where it lives in the sandbox."""
        try:
            skill = await asyncio.to_thread(gw.skills.get, skill_name)
            return json.dumps(await asyncio.to_thread(skill.detail), indent=2)
        except ApiError as exc:
            raise _fail(exc) from exc

    @server.tool()
    async def get_skill_file(skill_name: str, filename: str) -> str:
        """The text of one file of a skill (e.g. scripts/tool.py)."""
        try:
            path = await asyncio.to_thread(gw.skills.file, skill_name, filename)
        except ApiError as exc:
            raise _fail(exc) from exc
        if (size := path.stat().st_size) > MAX_READ_BYTES:
            raise _too_large(filename, size)
        return await asyncio.to_thread(path.read_text, encoding="utf-8", errors="replace")


def _file_tools(server: FastMCP, gw: Gateway) -> None:
    @server.tool()
    async def read_file(path: str) -> str:
        """Read a text file from the sandbox's workspace (a path relative to it)."""
        try:
            target = files.resolve(gw.settings.workspace, path)
        except ApiError as exc:
            raise _fail(exc) from exc
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the workspace")
        data = await asyncio.to_thread(_read_at_most, target, MAX_READ_BYTES)
        if isinstance(data, int):
            raise _too_large(path, data)
        return data.decode("utf-8", errors="replace")

    @server.tool()
    async def write_file(path: str, content: str) -> str:
        """Write a text file into the sandbox's workspace (a path relative to it), creating folders."""
        try:
            target = files.resolve(gw.settings.workspace, path)
            size = await asyncio.to_thread(files.write, gw.settings.workspace, target, content.encode())
        except ApiError as exc:
            raise _fail(exc) from exc
        return f"wrote {size} bytes to {path}"
