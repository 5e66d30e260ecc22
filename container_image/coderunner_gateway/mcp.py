"""The MCP server at ``/mcp`` (official ``mcp`` SDK, streamable HTTP).

Each MCP client session gets its own coderunner session (a kernel), so state
persists across ``execute_python_code`` calls. Output is streamed as progress
notifications while the code runs; the result carries stdout, stderr and the
error as text and figures as image content. A failure is a tool error.

DNS rebinding: a web page can make a browser send requests to 127.0.0.1
under its own host name. Requests to ``/mcp`` must name an IP literal or
``localhost`` in ``Host`` (and in ``Origin`` when present); the token is
required as on every route.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp.server.fastmcp import Context, FastMCP, Image
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse

from .errors import ApiError
from .events import Collector

if TYPE_CHECKING:
    from .app import Gateway

INSTRUCTIONS = """Runs code in a sandbox on the user's machine. execute_python_code keeps state between calls
(a Jupyter kernel per MCP session; reset_session starts afresh); matplotlib figures come back as images.
Skills (list_skills, get_skill_info, get_skill_file) are folders of instructions and scripts you can run with
execute_python_code. read_file/write_file work in the sandbox's workspace."""


def _local_name(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class HostOriginGuard:
    """ASGI middleware for /mcp: Host and Origin must be local names (IPs or localhost)."""

    def __init__(self, app: Any, prefix: str = "/mcp") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            hostname = urlsplit(f"//{host}").hostname
            origin = headers.get(b"origin", b"").decode("latin-1")
            bad = None
            if not _local_name(hostname):
                bad = f"Host {host!r} is not allowed for /mcp: connect by IP address or localhost"
            elif origin and origin != "null" and not _local_name(urlsplit(origin).hostname):
                bad = f"Origin {origin!r} is not allowed for /mcp"
            if bad:
                err = ApiError(bad, code="host_not_allowed", status=403)
                return await JSONResponse(err.to_json(), status_code=403)(scope, receive, send)
        return await self.app(scope, receive, send)


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
            except Exception:  # noqa: BLE001 - a client that cannot take progress still gets the result
                pass


def build(gw: Gateway) -> FastMCP:
    from . import files

    server = FastMCP(
        "coderunner", instructions=INSTRUCTIONS, streamable_http_path="/mcp",
        # checked by HostOriginGuard, which also allows container IPs
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    sessions: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    async def client_session(ctx: Context) -> Any:
        sid = sessions.get(ctx.session)
        if sid is not None and sid in gw.sessions.sessions:
            return gw.sessions.sessions[sid]
        session = await gw.sessions.create(None, "python")
        sessions[ctx.session] = session.id
        return session

    def fail(exc: ApiError) -> ToolError:
        return ToolError(exc.message)

    @server.tool(structured_output=False)  # text and image content, not a JSON document
    async def execute_python_code(command: str, ctx: Context) -> list[Any]:
        """Run Python code in this conversation's persistent Jupyter kernel (variables, imports and files
        persist between calls). Returns stdout, stderr, the value of the last expression, and figures
        (call plt.show()) as images."""
        if not command.strip():
            raise ToolError("command is empty: send the code to run")
        session = await client_session(ctx)
        sink = _ProgressSink(gw.settings.max_output_bytes, ctx)
        await gw.run(sink, {"session": session, "code": command, "timeout": gw.settings.default_timeout})
        result = sink.result()
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

    @server.tool()
    async def reset_session(ctx: Context) -> str:
        """Forget all state: this conversation's kernel is restarted."""
        session = await client_session(ctx)
        await gw.sessions.restart(session.id)
        return "the session was reset: all variables and imports are gone"

    @server.tool()
    async def navigate_and_get_all_visible_text(url: str) -> str:
        """Open an http(s) URL in the sandbox's headless Chromium and return the page's visible text."""
        from .browser import check_url

        try:
            page = await gw.browser.navigate(check_url(url))
        except ApiError as exc:
            raise fail(exc) from exc
        return f"# {page['title']}\n{page['url']}\n\n{page['content']}"

    @server.tool()
    async def list_skills() -> str:
        """The skills available: name and description of each."""
        return json.dumps([s.summary() for s in gw.skills.list()], indent=2)

    @server.tool()
    async def get_skill_info(skill_name: str) -> str:
        """A skill's instructions (SKILL.md), its files, and where it lives in the sandbox."""
        try:
            return json.dumps(gw.skills.get(skill_name).detail(), indent=2)
        except ApiError as exc:
            raise fail(exc) from exc

    @server.tool()
    async def get_skill_file(skill_name: str, filename: str) -> str:
        """The text of one file of a skill (e.g. scripts/tool.py)."""
        try:
            return gw.skills.file(skill_name, filename).read_text(encoding="utf-8", errors="replace")
        except ApiError as exc:
            raise fail(exc) from exc

    @server.tool()
    async def read_file(path: str) -> str:
        """Read a text file from the sandbox's workspace (a path relative to it)."""
        try:
            target = files.resolve(gw.settings.workspace, path)
        except ApiError as exc:
            raise fail(exc) from exc
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the workspace")
        return target.read_text(encoding="utf-8", errors="replace")

    @server.tool()
    async def write_file(path: str, content: str) -> str:
        """Write a text file into the sandbox's workspace (a path relative to it), creating folders."""
        try:
            size = files.write(files.resolve(gw.settings.workspace, path), content.encode())
        except ApiError as exc:
            raise fail(exc) from exc
        return f"wrote {size} bytes to {path}"

    return server
