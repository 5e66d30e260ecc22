"""``POST /v1/execute``: parse a request into an :class:`ExecuteRequest`, run it, answer as
one JSON document (``Accept: application/json``, the default) or an NDJSON event stream."""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import contextlib
import logging
import os.path
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .. import files
from ..errors import EXIT_PROCESS_LIMIT, ApiError, BadRequest, process_limit
from ..events import Collector, StreamSink, json_bytes
from ..gateway import Gateway
from ..heap import heap
from ..request import ExecuteRequest
from ..sessions import SessionManager
from ..settings import Settings
from ..validation import MAX_ARGV_ENV_BYTES, Fields, read_json

log = logging.getLogger("coderunner_gateway")

NDJSON = "application/x-ndjson"
EXECUTE_FIELDS = {"code", "session_id", "language", "timeout", "stdin", "stdin_b64", "argv", "env", "filename", "cwd"}
SCRIPT_ONLY_FIELDS = ("stdin", "stdin_b64", "argv", "env", "filename", "cwd")


def parse_execute(
    data: dict[str, Any], settings: Settings, sessions: SessionManager, *, strict: bool = True
) -> ExecuteRequest:
    """Check an execute request's body (400 naming the field) and find its session (404)."""
    f = Fields(data, EXECUTE_FIELDS, strict=strict)
    code = f.string("code")
    if code is None:
        raise BadRequest("field 'code' is required: the code to run", code="invalid_field")
    if not code.strip():
        raise BadRequest("field 'code' is empty: send some code to run", code="empty_code")
    sid = f.string("session_id", nonempty=True)
    language = f.language()
    timeout = f.number("timeout", maximum=settings.max_timeout) or settings.default_timeout
    stdin = _stdin(f.string("stdin"), f.string("stdin_b64"))
    argv, env = f.str_list("argv"), f.str_map("env")
    filename = f.name("filename", nonempty=False)
    cwd = None
    if sid is None and (rel := f.string("cwd")) is not None:
        cwd = _cwd(settings.workspace, rel)
        if filename and (filename.startswith("/") or ".." in filename.split("/")):
            raise BadRequest(
                f"filename {filename[:80]!r}: with a cwd, a path relative to it, without '..'", code="invalid_field"
            )
    _check_argv_env(argv, env)
    session = None if sid is None else _session(data, sid, language, sessions)
    return ExecuteRequest(
        code=code,
        language=language,
        timeout=timeout,
        session=session,
        stdin=stdin,
        argv=tuple(argv),
        env=env,
        filename=filename,
        cwd=cwd,
    )


def _check_argv_env(argv: list[str], env: dict[str, str]) -> None:
    size = sum(len(a.encode()) + 1 for a in argv) + sum(len(k.encode()) + len(v.encode()) + 2 for k, v in env.items())
    if size > MAX_ARGV_ENV_BYTES:
        raise BadRequest(
            f"argv and env together are over {MAX_ARGV_ENV_BYTES} bytes: send data as stdin or in a file",
            code="invalid_field",
        )


def _session(data: dict[str, Any], sid: str, language: str, sessions: SessionManager) -> Any:
    """The session ``sid`` names (404 if none), refusing fields only scripts take."""
    only_scripts = [k for k in SCRIPT_ONLY_FIELDS if data.get(k) not in (None, [], {})]
    if only_scripts:
        raise BadRequest(
            f"{', '.join(only_scripts)} only apply to scripts (requests without session_id)",
            code="invalid_field",
        )
    session = sessions.get(sid)
    if "language" in data and session.language != language:
        raise BadRequest(f"session {sid!r} runs {session.language}, not {language}", code="language_mismatch")
    return session


def _cwd(workspace: str, rel: str) -> str:
    """A script's start directory: an existing folder of the workspace, given relative to it (no links out)."""
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
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("field 'stdin_b64' must be base64 (RFC 4648, with padding)", code="invalid_field") from None


STREAM_AFTER = 256 << 10  # a script's stdout this large is sent as it comes, not after its end
JSON_PIECE = 1 << 20  # characters of stdout encoded as JSON at a time


async def _until_grown(collector: Collector, task: asyncio.Task[None], timeout: float | None) -> None:
    """Until the script's stdout grows, the run ends, or ``timeout`` seconds pass."""
    assert collector.grown is not None
    collector.grown.clear()
    grown = asyncio.ensure_future(collector.grown.wait())
    await asyncio.wait({task, grown}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    grown.cancel()


async def streamed_answer(collector: Collector, task: asyncio.Task[None]) -> AsyncIterator[bytes | memoryview]:
    """A script's JSON answer with ``stdout`` first, sent as the script writes it (the client
    reads 10 MB while it is made, not after), and the rest of the answer at its end: the same
    JSON as the whole answer, its keys in another order.

    Each byte is copied as few times as it can be (each copy of 10 MB is 1 to 10 ms here, the
    more when its pages are new): sliced off the collector, decoded, encoded as JSON, sent."""
    sent, exact = 0, True
    pending: bytes | bytearray = b""
    try:
        yield b'{"stdout":"'
        while True:
            done = task.done()
            chunk = collector.stdout[sent:]  # a slice is already a copy
            sent += len(chunk)
            if chunk or done:
                data = pending + chunk if pending else chunk
                try:  # a character cut by the end of a read waits for the rest (pending)
                    text, used = codecs.utf_8_decode(data, "strict", done)
                except UnicodeDecodeError:  # not UTF-8: U+FFFD shown, as the whole answer shows it
                    exact = False
                    text, used = codecs.utf_8_decode(data, "replace", done)
                pending = data[used:]
                # in pieces: orjson reserves 6 bytes a character (escapes), so a 10 MB text took
                # a fresh 60 MB mapping and 10 MB of page faults each time; 6 MiB comes from the heap
                for i in range(0, len(text), JSON_PIECE):
                    yield memoryview(json_bytes(text[i : i + JSON_PIECE]))[1:-1]  # a whole-str slice is the str
            if done:
                break
            await _until_grown(collector, task, None)
        rest = collector.result(stdout=False)
        failure = None if task.cancelled() else task.exception()
        if task.cancelled() or failure is not None:  # too late for a 500: said in the answer
            log.error("execution failed", exc_info=failure)
            rest.update(status="error", exit_code=1, message="internal gateway error; see the gateway log")
        rest.pop("stdout", None)
        if not exact:  # what was sent is exact only if it was UTF-8 (surrogates are not)
            rest["stdout_b64"] = base64.b64encode(collector.stdout).decode("ascii")
        yield b'",' + json_bytes(rest)[1:]
        heap.used(sent)  # its buffers go back to the system once large answers stop
    finally:
        if not task.done():  # the client went away: stop its code
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ExecuteRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [Route("/v1/execute", self.execute, methods=["POST"])]

    async def execute(self, request: Request) -> Response:
        data = await read_json(request, self.gw.settings.max_request_bytes)
        return await self.respond(request, self.parse(data))

    def parse(self, data: dict[str, Any], *, strict: bool = True) -> ExecuteRequest:
        return parse_execute(data, self.gw.settings, self.gw.sessions, strict=strict)

    async def respond(self, request: Request, req: ExecuteRequest, headers: dict[str, str] | None = None) -> Response:
        if NDJSON in request.headers.get("accept", ""):
            return StreamingResponse(self._stream(req), media_type=NDJSON, headers=headers)
        collector = Collector(self.gw.settings.max_output_bytes)
        if req.session is None:  # a script's stdout can be on its way while it runs
            collector.grown = asyncio.Event()
        task = asyncio.create_task(self.gw.run(collector, req, output_limit=collector.max_bytes))
        # nothing is sent until the end (or until a script's stdout is large): watch for the client
        # leaving, and stop its code then
        while not task.done():
            if collector.grown is None:
                await asyncio.wait({task}, timeout=0.5)
            else:
                if len(collector.stdout) >= STREAM_AFTER:
                    return StreamingResponse(
                        streamed_answer(collector, task), headers=headers, media_type="application/json"
                    )
                await _until_grown(collector, task, 0.5)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return Response(status_code=499)  # nobody reads it
        task.result()  # a failure is its error response (503 process_limit, 500), not a 200 of nulls
        body = json_bytes(collector.result())
        heap.used(len(body))
        return Response(body, headers=headers, media_type="application/json")

    async def _stream(self, req: ExecuteRequest) -> AsyncIterator[bytes]:
        # a kernel cannot be paused (ZMQ PUB/SUB): what a slow client cannot take is dropped, counted
        sink = StreamSink(lossy=req.session is not None)

        async def produce() -> None:
            try:
                await self.gw.run(sink, req)
            except Exception as exc:
                if limit := process_limit(exc):  # the code could not start: said as the limit it is
                    log.warning("execution refused: %s", limit.message)
                    done = {"exit_code": EXIT_PROCESS_LIMIT, "message": limit.message}
                else:
                    log.exception("execution failed")
                    done = {"exit_code": 1, "message": "internal gateway error; see the gateway log"}
                await sink.emit({"type": "done", "status": "error", "execution_time": 0.0, **done})
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
