"""The gateway's HTTP API (v1), as laid out in ARCHITECTURE.md."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import __version__, files
from .errors import ApiError, BadRequest, NotFound, PayloadTooLarge, Unauthorized
from .events import Collector, Sink, StreamSink
from .outcome import Outcome
from .scripts import ScriptRunner
from .sessions import SessionManager
from .settings import Settings
from .validation import MAX_ARGV_ENV_BYTES, Fields, read_json

log = logging.getLogger("coderunner_gateway")

NDJSON = "application/x-ndjson"
EXECUTE_FIELDS = {"code", "session_id", "language", "timeout", "stdin", "stdin_b64", "argv", "env", "filename", "cwd"}
DEPRECATED = {"Deprecation": "true"}


class Gateway:
    """Holds the running state; routes are its methods."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = SessionManager(settings)
        self.scripts = ScriptRunner(settings)
        from pathlib import Path

        from .skills import SkillStore, default_public_dir

        self.skills = SkillStore(
            Path(settings.skills_dir) if settings.skills_dir else default_public_dir(),
            Path(settings.user_skills_dir) if settings.user_skills_dir else None,
            Path(settings.runtime_dir) / "skills",
        )
        self.started = time.time()
        self._closed = False
        from .browser import Browser

        self.browser = Browser(settings.chromium, settings.jail)

    async def startup(self) -> None:
        self.sessions.start()
        self.scripts.start()

    async def close(self) -> None:
        """Idempotent: end every kernel, bash and script process."""
        if self._closed:
            return
        self._closed = True
        self.scripts.kill_all()
        await asyncio.gather(self.sessions.close(), self.browser.close(), return_exceptions=True)

    # -- execution ------------------------------------------------------------
    async def run(self, sink: Sink, req: dict[str, Any]) -> dict[str, Any]:
        """Emit ``start``, the code's events and ``done``; return ``done``."""
        session = req["session"]
        await sink.emit({"type": "start", "session_id": session.id if session else None})
        t0 = time.perf_counter()
        if session is not None:
            outcome = await self.sessions.execute(session, req["code"], req["timeout"], sink)
        else:
            outcome = await self.scripts.run(
                sink,
                code=req["code"],
                language=req["language"],
                argv=req["argv"],
                stdin=req["stdin"],
                env=req["env"],
                timeout=req["timeout"],
                filename=req["filename"],
                cwd=req["cwd"],
            )
        done = _done_event(outcome, time.perf_counter() - t0)
        await sink.emit(done)
        return done

    def parse_execute(self, data: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
        f = Fields(data, EXECUTE_FIELDS, strict=strict)
        code = f.str("code")
        if code is None:
            raise BadRequest("field 'code' is required: the code to run", code="invalid_field")
        if not code.strip():
            raise BadRequest("field 'code' is empty: send some code to run", code="empty_code")
        sid = f.str("session_id", nonempty=True)
        language = f.language()
        req = {
            "code": code,
            "language": language,
            "timeout": f.number("timeout", maximum=self.settings.max_timeout) or self.settings.default_timeout,
            "stdin": _stdin(f.str("stdin"), f.str("stdin_b64")),
            "argv": f.str_list("argv"),
            "env": f.str_map("env"),
            "filename": f.name("filename", nonempty=False),
            "cwd": None,
            "session": None,
        }
        if sid is None and (cwd := f.str("cwd")) is not None:
            req["cwd"] = _cwd(self.settings.workspace, cwd)
            name = req["filename"]
            if name and (name.startswith("/") or ".." in name.split("/")):
                raise BadRequest(
                    f"filename {name[:80]!r}: with a cwd, a path relative to it, without '..'", code="invalid_field"
                )
        if (
            sum(len(a.encode()) + 1 for a in req["argv"])
            + sum(len(k.encode()) + len(v.encode()) + 2 for k, v in req["env"].items())
            > MAX_ARGV_ENV_BYTES
        ):
            raise BadRequest(
                f"argv and env together are over {MAX_ARGV_ENV_BYTES} bytes: send data as stdin or in a file",
                code="invalid_field",
            )
        if sid is not None:
            only_scripts = [
                k for k in ("stdin", "stdin_b64", "argv", "env", "filename", "cwd") if data.get(k) not in (None, [], {})
            ]
            if only_scripts:
                raise BadRequest(
                    f"{', '.join(only_scripts)} only apply to scripts (requests without session_id)",
                    code="invalid_field",
                )
            session = self.sessions.get(sid)
            if "language" in data and session.language != language:
                raise BadRequest(f"session {sid!r} runs {session.language}, not {language}", code="language_mismatch")
            req["session"] = session
        return req

    async def respond_execute(
        self, request: Request, req: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Response:
        if NDJSON in request.headers.get("accept", ""):
            return StreamingResponse(self._stream(req), media_type=NDJSON, headers=headers)
        collector = Collector(self.settings.max_output_bytes)
        task = asyncio.create_task(self.run(collector, req))
        # nothing is sent until the end: watch for the client leaving, and stop its code then
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return Response(status_code=499)  # nobody reads it
        return JSONResponse(collector.result(), headers=headers)

    async def _stream(self, req: dict[str, Any]):
        # a kernel cannot be paused (ZMQ PUB/SUB): what a slow client cannot take is dropped, counted
        sink = StreamSink(lossy=req["session"] is not None)

        async def produce() -> None:
            try:
                await self.run(sink, req)
            except Exception:
                log.exception("execution failed")
                await sink.emit(
                    {
                        "type": "done",
                        "status": "error",
                        "exit_code": 1,
                        "execution_time": 0.0,
                        "message": "internal gateway error; see the gateway log",
                    }
                )
            finally:
                await sink.close()

        task = asyncio.create_task(produce())
        try:
            while (line := await sink.get()) is not None:
                yield line
        finally:
            if not task.done():  # the client went away: stop the code it started
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    # -- routes -----------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "uptime": round(time.time() - self.started, 3),
                "sessions": len(self.sessions.sessions),
                "warm_kernels": len(self.sessions.pool.warm),
                "kernel_pool": self.sessions.pool.status(),  # warm now, the target it refills to, its floor and max
                "running_scripts": len(self.scripts.running),
                "browser": "running" if self.browser.running else "not started",
                "auth": self.settings.token is not None,
            }
        )

    async def execute(self, request: Request) -> Response:
        data = await read_json(request, self.settings.max_request_bytes)
        return await self.respond_execute(request, self.parse_execute(data))

    async def legacy_execute(self, request: Request) -> Response:
        data = await read_json(request, self.settings.max_request_bytes)
        if "code" not in data and "command" in data:
            data["code"] = data.pop("command")
        req = self.parse_execute({k: v for k, v in data.items() if k in EXECUTE_FIELDS}, strict=False)
        return await self.respond_execute(request, req, DEPRECATED)

    async def create_session(self, request: Request) -> Response:
        data = await read_json(request, self.settings.max_request_bytes, allow_empty=True)
        f = Fields(data, {"name", "language"})
        session = await self.sessions.create(f.name("name"), f.language())
        return JSONResponse(session.info(), status_code=201)

    async def list_sessions(self, request: Request) -> Response:
        return JSONResponse({"sessions": self.sessions.list()})

    async def get_session(self, request: Request) -> Response:
        return JSONResponse(self.sessions.get(request.path_params["sid"]).info())

    async def delete_session(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["sid"])
        await self.sessions.delete(session.id)
        await self.browser.drop_context(session.id)
        return JSONResponse({"deleted": request.path_params["sid"]})

    async def interrupt_session(self, request: Request) -> Response:
        session = await self.sessions.interrupt(request.path_params["sid"])
        return JSONResponse(session.info())

    async def restart_session(self, request: Request) -> Response:
        session = await self.sessions.restart(request.path_params["sid"])
        return JSONResponse(session.info())

    async def legacy_session(self, request: Request) -> Response:
        """``/v1/sessions/session``: the original API, session id in query or body."""
        if request.method == "POST":
            data = await read_json(request, self.settings.max_request_bytes, allow_empty=True)
            session = await self.sessions.create(None, Fields(data, set(), strict=False).language())
            return JSONResponse(session.info(), headers=DEPRECATED)
        sid = request.query_params.get("session_id")
        if sid is None and request.method == "DELETE":
            sid = (await read_json(request, self.settings.max_request_bytes, allow_empty=True)).get("session_id")
        if not isinstance(sid, str) or not sid:
            raise BadRequest("give the session as ?session_id=ID", code="invalid_field")
        if request.method == "GET":
            return JSONResponse(self.sessions.get(sid).info(), headers=DEPRECATED)
        await self.sessions.delete(sid)
        return JSONResponse({"deleted": sid}, headers=DEPRECATED)

    # -- browser ----------------------------------------------------------------
    async def _browser_request(self, request: Request, extra: set[str]) -> tuple[Fields, dict[str, Any]]:
        from .browser import WAIT_UNTIL, check_url

        data = await read_json(request, self.settings.max_request_bytes)
        f = Fields(data, {"url", "session_id", "wait_until", "timeout", *extra})
        common = {
            "url": check_url(data.get("url")),
            "session_id": f.str("session_id", nonempty=True),
            "wait_until": f.choice("wait_until", WAIT_UNTIL, "load"),
            "timeout": f.number("timeout", maximum=120) or 30.0,
        }
        if common["session_id"] is not None:
            common["session_id"] = self.sessions.get(common["session_id"]).id
        return f, common

    async def browser_navigate(self, request: Request) -> Response:
        _, args = await self._browser_request(request, set())
        return JSONResponse(await self.browser.navigate(**args))

    async def browser_content(self, request: Request) -> Response:
        from .browser import FORMATS

        f, args = await self._browser_request(request, {"format"})
        return JSONResponse(await self.browser.content(fmt=f.choice("format", FORMATS, "text"), **args))

    async def browser_screenshot(self, request: Request) -> Response:
        f, args = await self._browser_request(request, {"full_page", "width", "height"})
        png = await self.browser.screenshot(
            full_page=f.bool("full_page"),
            width=f.int("width", 1280, low=1, high=8000),
            height=f.int("height", 720, low=1, high=8000),
            **args,
        )
        return Response(png, media_type="image/png")

    async def legacy_browser(self, request: Request) -> Response:
        """The original routes: {url} -> text; content also as readable_content.content."""
        from .browser import check_url

        data = await read_json(request, self.settings.max_request_bytes)
        result = await self.browser.navigate(check_url(data.get("url")))
        if request.url.path.endswith("/content"):
            result["readable_content"] = {"content": result["content"]}
        return JSONResponse(result, headers=DEPRECATED)

    async def list_skills(self, request: Request) -> Response:
        return JSONResponse({"skills": [s.summary() for s in self.skills.list()]})

    async def get_skill(self, request: Request) -> Response:
        return JSONResponse(self.skills.get(request.path_params["name"]).detail())

    async def get_skill_file(self, request: Request) -> Response:
        from .skills import MAX_SKILL_FILE_BYTES

        path = self.skills.file(request.path_params["name"], request.path_params["file"])
        if path.stat().st_size > MAX_SKILL_FILE_BYTES:
            return FileResponse(path, media_type="application/octet-stream")
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            media = "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            media = "application/octet-stream"
        return Response(data, media_type=media)

    async def file(self, request: Request) -> Response:
        rel = request.path_params.get("path", "")
        root = files.resolve(self.settings.workspace, "")
        path = files.resolve(self.settings.workspace, rel)
        if request.method == "GET":
            if path.is_dir():
                return JSONResponse(files.listing(path, root))
            if not path.is_file():
                raise NotFound(f"no file {rel!r} in the workspace", code="file_not_found")
            # streamed from disk in chunks: a file of any size costs no memory
            response = FileResponse(path, media_type="application/octet-stream")
            response.chunk_size = 1 << 20
            return response
        if request.method == "PUT":
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.settings.max_request_bytes:
                    raise PayloadTooLarge(
                        f"file is over the gateway's limit of {self.settings.max_request_bytes} bytes"
                    )
            size = files.write(path, bytes(body))
            return JSONResponse({"path": rel, "size": size}, status_code=201)
        files.remove(path, root)
        return JSONResponse({"deleted": rel})


def _cwd(workspace: str, rel: str) -> str:
    """A script's start directory: an existing folder of the workspace, given relative to it (no links out)."""
    import os.path

    parts = rel.split("/")
    if not rel or rel.startswith("/") or ".." in parts or "\x00" in rel:
        raise BadRequest(
            f"cwd {rel[:80]!r}: give a folder of the workspace, relative to it, without '..'", code="invalid_cwd"
        )
    try:
        path = files.resolve(workspace, rel)
    except ApiError:
        raise BadRequest(f"cwd {rel[:80]!r} is not a folder of the workspace", code="invalid_cwd") from None
    if not os.path.isdir(path):
        raise BadRequest(
            f"cwd {rel[:80]!r}: no such folder in the workspace (upload it with PUT /v1/files)", code="invalid_cwd"
        )
    # the path the cells see: the workspace is bound at its own (unresolved) path
    return os.path.join(workspace, os.path.normpath(rel))


def _stdin(text: str | None, b64: str | None) -> bytes | None:
    """A script's stdin as bytes: ``stdin`` (text, sent as UTF-8) or ``stdin_b64`` (any bytes)."""
    if b64 is None:
        return None if text is None else text.encode()
    if text is not None:
        raise BadRequest(
            "give stdin either as 'stdin' (text) or as 'stdin_b64' (base64 bytes), not both", code="invalid_field"
        )
    import base64
    import binascii

    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("field 'stdin_b64' must be base64 (RFC 4648, with padding)", code="invalid_field") from None


def _done_event(outcome: Outcome, elapsed: float) -> dict[str, Any]:
    done: dict[str, Any] = {
        "type": "done",
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "execution_time": round(elapsed, 6),
    }
    if outcome.message:
        done["message"] = outcome.message
    if outcome.state_lost:
        done["state_lost"] = True
    if outcome.signal:
        done["signal"] = outcome.signal
    if outcome.dropped and any(outcome.dropped.values()):
        done["dropped"] = outcome.dropped
    return done


class AuthMiddleware:
    """Every route but ``GET /health`` needs the token (Bearer or X-API-Key)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] != "http" or scope["path"] == "/health":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if not given or not hmac.compare_digest(given, self.token):
            err = Unauthorized(
                "missing or wrong token: send 'Authorization: Bearer <token>' (the token is in the gateway's "
                "CODERUNNER_TOKEN; `coderunner status` shows where)"
                if not given
                else "wrong token",
            )
            return await JSONResponse(err.to_json(), status_code=401, headers={"WWW-Authenticate": "Bearer"})(
                scope, receive, send
            )
        return await self.app(scope, receive, send)


def _host_allowed(host: str, unix: bool) -> bool:
    """``Host`` names this machine: an IP literal (any: a VM's or container's address) or
    localhost. A web page can only reach us under its own DNS name (DNS rebinding),
    which this refuses. Over a unix socket the CLI sends ``coderunner``."""
    try:
        name = urlsplit(f"//{host}").hostname
        urlsplit(f"//{host}").port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if not name:
        return False
    if name in ("localhost", "localhost.") or (unix and name == "coderunner"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _origin_allowed(origin: str) -> bool:
    """Only pages served from this machine's loopback may call us from a browser;
    ``null`` (sandboxed frames, file: pages) and every other site may not."""
    try:
        parts = urlsplit(origin)
        name = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not name or parts.username is not None:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostOriginGuard:
    """Every route, ``/health`` included, before the token: ``Host`` must name this machine
    and ``Origin``, when a browser sends one, a loopback page (see the two checks)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin")
            server = scope.get("server")
            unix = server is None or server[1] is None
            err = None
            if not _host_allowed(host, unix):
                err = ApiError(
                    f"Host {host!r} is not allowed: connect by IP address or localhost",
                    code="host_not_allowed",
                    status=403,
                )
            elif origin is not None and not _origin_allowed(origin.decode("latin-1")):
                err = ApiError(
                    f"Origin {origin.decode('latin-1')!r} is not allowed: only pages on this "
                    "machine's loopback (http://localhost, http://127.0.0.1) may call the gateway",
                    code="origin_not_allowed",
                    status=403,
                )
            if err is not None:
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await JSONResponse(err.to_json(), status_code=403)(scope, receive, send)
        return await self.app(scope, receive, send)


async def _api_error(request: Request, exc: ApiError) -> Response:
    return JSONResponse(exc.to_json(), status_code=exc.status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = {
        404: f"no route {request.url.path}: see GET /health and the README's API section",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        {"error": {"code": codes.get(exc.status_code, "http_error"), "message": message}}, status_code=exc.status_code
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"error": {"code": "internal_error", "message": f"internal gateway error: {exc!r}"}}, status_code=500
    )


def create_app(settings: Settings, *, mcp_idle_timeout: float = 600.0) -> tuple[Any, Gateway]:
    from . import mcp

    gw = Gateway(settings)
    mcp_server = mcp.build(gw, idle_timeout=mcp_idle_timeout)
    mcp_app = mcp_server.streamable_http_app()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await gw.startup()
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            await gw.close()

    routes = [
        Route("/health", gw.health, methods=["GET"]),
        Route("/v1/execute", gw.execute, methods=["POST"]),
        Route("/execute", gw.legacy_execute, methods=["POST"]),
        Route("/v1/sessions", gw.create_session, methods=["POST"]),
        Route("/v1/sessions", gw.list_sessions, methods=["GET"]),
        Route("/v1/sessions/session", gw.legacy_session, methods=["GET", "POST", "DELETE"]),
        Route("/v1/sessions/{sid}", gw.get_session, methods=["GET"]),
        Route("/v1/sessions/{sid}", gw.delete_session, methods=["DELETE"]),
        Route("/v1/sessions/{sid}/interrupt", gw.interrupt_session, methods=["POST"]),
        Route("/v1/sessions/{sid}/restart", gw.restart_session, methods=["POST"]),
        Route("/v1/browser/navigate", gw.browser_navigate, methods=["POST"]),
        Route("/v1/browser/content", gw.browser_content, methods=["POST"]),
        Route("/v1/browser/screenshot", gw.browser_screenshot, methods=["POST"]),
        Route("/v1/browser/interactions/navigate", gw.legacy_browser, methods=["POST"]),
        Route("/v1/browser/interactions/content", gw.legacy_browser, methods=["POST"]),
        Route("/v1/skills", gw.list_skills, methods=["GET"]),
        Route("/v1/skills/{name}", gw.get_skill, methods=["GET"]),
        Route("/v1/skills/{name}/files/{file:path}", gw.get_skill_file, methods=["GET"]),
        Route("/v1/files", gw.file, methods=["GET"]),
        Route("/v1/files/{path:path}", gw.file, methods=["GET", "PUT", "DELETE"]),
        *mcp_app.routes,  # /mcp
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error},
    )
    return HostOriginGuard(AuthMiddleware(app, settings.token)), gw
