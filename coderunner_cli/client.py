"""Python client for the coderunner gateway: sync and async twins over one base.

    from coderunner_cli import CodeRunner, execute

    print(execute("print(6 * 7)").stdout)          # raises ExecutionError if the code fails
    with CodeRunner() as cr, cr.session() as s:     # finds the running sandbox itself
        s.execute("x = 1")
        print(s.execute("x + 1").outputs)

Request building and response parsing live in :class:`_Base`; only I/O
differs. It stays one module over ~300 lines on purpose: each sync method sits beside
its async twin's module-level sibling, so a change to one is made and reviewed with the other. The sync twin uses the standard library's ``http.client`` (cheap to
import: the CLI pays imports on every call); the async twin uses httpx.
Both stream NDJSON events and always close the response.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    AuthError,
    ExecutionError,
    GatewayError,
    GatewayUnavailable,
    ProcessLimitReached,
    SandboxNotRunning,
    SessionNotFound,
)

__all__ = ["AsyncCodeRunner", "AsyncSession", "CodeRunner", "ExecutionResult", "Session", "execute"]

NDJSON = "application/x-ndjson"
Callback = Callable[[Any], Any]


@dataclass
class ExecutionResult:
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    status: str = "ok"
    exit_code: int = 0
    execution_time: float = 0.0
    session_id: str | None = None
    message: str | None = None
    truncated: bool = False
    stdout_bytes: bytes = b""  # exact; ``stdout`` shows bytes that are not UTF-8 as U+FFFD
    stderr_bytes: bytes = b""

    @property
    def success(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str | None:
        """``text/plain`` of the last result, as a REPL would echo it."""
        for out in reversed(self.outputs):
            if out.get("type") == "result":
                return out["data"].get("text/plain")
        return None


class _Accumulator:
    """Folds events into an ExecutionResult and fires the callbacks."""

    def __init__(self, on_stdout: Callback | None, on_stderr: Callback | None, on_output: Callback | None) -> None:
        self.result = ExecutionResult()
        self._out = bytearray()
        self._err = bytearray()
        self.cb = {"stdout": on_stdout, "stderr": on_stderr}
        self.on_output = on_output

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        r = self.result
        if kind in ("stdout", "stderr"):
            (self._out if kind == "stdout" else self._err).extend(event_bytes(event))
            if cb := self.cb[kind]:
                cb(event["text"])
        elif kind in ("display", "result"):
            r.outputs.append(event)
            if self.on_output:
                self.on_output(event)
        elif kind == "error":
            r.error = {k: event.get(k) for k in ("ename", "evalue", "traceback")}
        elif kind == "start":
            r.session_id = event.get("session_id")
        elif kind == "done":
            r.status = event.get("status", "error")
            r.exit_code = event.get("exit_code", 1)
            r.execution_time = event.get("execution_time", 0.0)
            r.message = event.get("message")

    def finish(self) -> ExecutionResult:
        r = self.result
        r.stdout_bytes, r.stderr_bytes = bytes(self._out), bytes(self._err)
        r.stdout, r.stderr = _text(r.stdout_bytes), _text(r.stderr_bytes)
        return r


def event_bytes(event: dict[str, Any]) -> bytes:
    """The exact bytes of a ``stdout``/``stderr`` event: ``b64`` when the gateway sent it
    (the bytes were not UTF-8), else ``text`` as UTF-8."""
    if "b64" in event:
        return base64.b64decode(event["b64"])
    return event.get("text", "").encode("utf-8", "surrogatepass")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace")


def discover(
    url: str | None = None, token: str | None = None, sandbox: str | None = None
) -> tuple[str, str | None, bool]:
    """URL and token: given > the sandbox named ``sandbox`` > $CODERUNNER_URL/$CODERUNNER_TOKEN > the
    selected sandbox (``--name``, $CODERUNNER_SANDBOX, else ``default``). The bool says whether they
    came from `coderunner up`'s state."""
    if sandbox is None:
        url = url or os.environ.get("CODERUNNER_URL")
        token = token or os.environ.get("CODERUNNER_TOKEN")
    if url:
        return url.rstrip("/"), token, False
    from . import state

    st = state.load(sandbox)
    if st is None:
        raise SandboxNotRunning.named(sandbox)
    return st.url, token or st.token, True


class _Base:
    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float | None = None, sandbox: str | None = None
    ) -> None:
        self.url, self.token, self._from_state = discover(url, token, sandbox)
        self.timeout = timeout  # HTTP read timeout; None waits as long as the code runs

    def _headers(self, *, stream: bool = False, json_body: bool = True) -> dict[str, str]:
        h = {"Accept": NDJSON if stream else "application/json"}
        if json_body:
            h["Content-Type"] = "application/json"
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    @staticmethod
    def _execute_body(
        code: str,
        session: str | None,
        timeout: float | None,
        language: str | None,
        argv: list[str] | None,
        stdin: str | bytes | None,
        env: dict[str, str] | None,
        filename: str | None,
        cwd: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"code": code}
        if isinstance(stdin, (bytes, bytearray)):  # UTF-8 goes as text (any gateway reads it), the rest as base64
            raw = bytes(stdin)
            try:
                stdin = raw.decode("utf-8")
            except UnicodeDecodeError:
                body["stdin_b64"] = base64.b64encode(raw).decode("ascii")
                stdin = None
        for key, value in (
            ("session_id", session),
            ("timeout", timeout),
            ("language", language),
            ("argv", argv),
            ("stdin", stdin),
            ("env", env),
            ("filename", filename),
            ("cwd", cwd),
        ):
            if value is not None:
                body[key] = value
        return body

    def _transport(self, exc: BaseException) -> GatewayError | SandboxNotRunning:
        """One translation of a transport failure for both twins (http.client's and httpx's)."""
        reason = _reason(exc)
        if reason == "timeout":
            limit = f" within {self.timeout:g}s" if self.timeout else " in time"
            return GatewayUnavailable(
                f"the gateway at {self.url} did not answer{limit}: give it a longer timeout, or see `coderunner logs`"
            )
        if self._from_state:
            return SandboxNotRunning(
                f"the sandbox does not answer at {self.url} ({reason}): start it with `coderunner up`, "
                "or see `coderunner status`"
            )
        return GatewayUnavailable(f"no gateway answers at {self.url} ({reason})")

    @staticmethod
    def _error(status: int, body: bytes) -> GatewayError:
        try:
            err = json.loads(body)["error"]
            code, message = err.get("code", ""), err.get("message", "")
        except (ValueError, KeyError, TypeError):
            code, message = "", body.decode("utf-8", "replace")[:200] or f"HTTP {status}"
        if status == 401:
            return AuthError(
                f"the gateway refused the token: {message}; run `coderunner up` again for a fresh one",
                status=status,
                code=code,
            )
        if code == "session_not_found":
            return SessionNotFound(message, status=status, code=code)
        if code == "process_limit":
            return ProcessLimitReached(message, status=status, code=code)
        return GatewayError(message, status=status, code=code)


# -- sync ----------------------------------------------------------------------


class CodeRunner(_Base):
    """Synchronous client. One keep-alive connection; not thread-safe (make one per thread)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        *,
        sandbox: str | None = None,
    ) -> None:
        super().__init__(url, token, timeout, sandbox)
        self._conn = None

    def __enter__(self) -> CodeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self):
        import http.client
        import socket
        from urllib.parse import urlsplit

        if self._conn is None:
            if self.url.startswith("unix:"):
                path = self.url[5:]

                class UnixConnection(http.client.HTTPConnection):
                    def connect(self) -> None:
                        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        self.sock.settimeout(self.timeout)
                        self.sock.connect(path)

                self._conn = UnixConnection("coderunner", timeout=self.timeout)
            else:
                parts = urlsplit(self.url)
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                self._conn = cls(parts.hostname, parts.port, timeout=self.timeout)
        return self._conn

    @contextlib.contextmanager
    def _open(self, method: str, path: str, body: Any = None, *, stream: bool = False, raw: bytes | None = None):
        import http.client

        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = self._headers(stream=stream, json_body=raw is None and body is not None)
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # a kept-alive connection the server closed: retry once on a fresh one
                if attempt == 0 and isinstance(
                    exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                ):
                    continue
                raise self._transport(exc) from exc
        try:
            if resp.status >= 400:
                raise self._error(resp.status, resp.read())
            yield resp
        except BaseException:
            self.close()  # a half-read response poisons the connection
            raise
        else:
            if not resp.isclosed():  # left early: closing stops a script; never wait for it
                self.close()

    def _read(self, resp, line: bool = False) -> bytes:
        import http.client

        try:
            return resp.readline() if line else resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._transport(exc) from exc

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(method, path, body) as resp:
            return json.loads(self._read(resp))

    # API ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    @contextlib.contextmanager
    def stream(
        self,
        code: str,
        *,
        session: str | None = None,
        timeout: float | None = None,
        language: str | None = None,
        argv: list[str] | None = None,
        stdin: str | bytes | None = None,
        env: dict[str, str] | None = None,
        filename: str | None = None,
        cwd: str | None = None,
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """Events as they happen. Leaving the block early closes the stream,
        which stops a script (a session keeps running: call interrupt). ``cwd``: a script's
        start folder, relative to the workspace (``filename`` is then its path from there)."""
        body = self._execute_body(code, session, timeout, language, argv, stdin, env, filename, cwd)
        with self._open("POST", "/v1/execute", body, stream=True) as resp:

            def events() -> Iterator[dict[str, Any]]:
                while line := self._read(resp, line=True):
                    if line.strip():
                        yield json.loads(line)

            yield events()

    def execute(
        self,
        code: str,
        *,
        session: str | None = None,
        timeout: float | None = None,
        language: str | None = None,
        argv: list[str] | None = None,
        stdin: str | bytes | None = None,
        env: dict[str, str] | None = None,
        filename: str | None = None,
        cwd: str | None = None,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_output: Callback | None = None,
    ) -> ExecutionResult:
        acc = _Accumulator(on_stdout, on_stderr, on_output)
        with self.stream(
            code,
            session=session,
            timeout=timeout,
            language=language,
            argv=argv,
            stdin=stdin,
            env=env,
            filename=filename,
            cwd=cwd,
        ) as events:
            for event in events:
                acc.feed(event)
        return acc.finish()

    def session(self, name: str | None = None, language: str = "python") -> Session:
        body = {"language": language} | ({"name": name} if name else {})
        return Session(self, self._json("POST", "/v1/sessions", body))

    def get_session(self, name_or_id: str) -> Session:
        return Session(self, self._json("GET", f"/v1/sessions/{_q(name_or_id)}"))

    def sessions(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/sessions")["sessions"]

    def delete_session(self, name_or_id: str) -> None:
        self._json("DELETE", f"/v1/sessions/{_q(name_or_id)}")

    def interrupt(self, name_or_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/sessions/{_q(name_or_id)}/interrupt")

    def restart(self, name_or_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/sessions/{_q(name_or_id)}/restart")

    def browser_content(
        self, url: str, format: str = "text", *, session: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        body = {"url": url, "format": format} | _present(session_id=session, timeout=timeout)
        return self._json("POST", "/v1/browser/content", body)

    def browser_screenshot(
        self,
        url: str,
        *,
        full_page: bool = False,
        width: int | None = None,
        height: int | None = None,
        timeout: float | None = None,
    ) -> bytes:
        body = {"url": url, "full_page": full_page} | _present(width=width, height=height, timeout=timeout)
        with self._open("POST", "/v1/browser/screenshot", body) as resp:
            return self._read(resp)

    def skills(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/skills")["skills"]

    def skill(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/skills/{_q(name)}")

    def upload(self, path: str, data: bytes) -> dict[str, Any]:
        with self._open("PUT", f"/v1/files/{_q(path, '/')}", raw=data) as resp:
            return json.loads(self._read(resp))

    def download(self, path: str) -> bytes:
        with self._open("GET", f"/v1/files/{_q(path, '/')}") as resp:
            return self._read(resp)


class Session:
    """A persistent session; as a context manager it is deleted on exit."""

    def __init__(self, runner: CodeRunner, info: dict[str, Any]) -> None:
        self.runner = runner
        self.info = info
        self.id: str = info["session_id"]
        self.name: str | None = info.get("name")

    def execute(self, code: str, **kw: Any) -> ExecutionResult:
        return self.runner.execute(code, session=self.id, **kw)

    def stream(self, code: str, **kw: Any):
        return self.runner.stream(code, session=self.id, **kw)

    def interrupt(self) -> None:
        self.runner.interrupt(self.id)

    def restart(self) -> None:
        self.runner.restart(self.id)

    def delete(self) -> None:
        self.runner.delete_session(self.id)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(SessionNotFound):
            self.delete()


# -- async ---------------------------------------------------------------------


class AsyncCodeRunner(_Base):
    """Asynchronous twin of :class:`CodeRunner` (same methods, awaited)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        *,
        sandbox: str | None = None,
    ) -> None:
        super().__init__(url, token, timeout, sandbox)
        import httpx

        transport = httpx.AsyncHTTPTransport(uds=self.url[5:]) if self.url.startswith("unix:") else None
        base = "http://coderunner" if transport else self.url
        self._client = httpx.AsyncClient(
            base_url=base, transport=transport, timeout=httpx.Timeout(self.timeout, connect=10)
        )

    async def __aenter__(self) -> AsyncCodeRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def _open(self, method: str, path: str, body: Any = None, *, stream: bool = False, raw: bytes | None = None):
        import httpx

        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = self._headers(stream=stream, json_body=raw is None and body is not None)
        request = self._client.build_request(method, path, content=payload, headers=headers)
        try:
            resp = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._transport(exc) from exc
        try:
            if resp.status_code >= 400:
                raise self._error(resp.status_code, await self._read(resp))
            yield resp
        finally:
            await resp.aclose()

    async def _read(self, resp) -> bytes:
        import httpx

        try:
            return await resp.aread()
        except httpx.TransportError as exc:
            raise self._transport(exc) from exc

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        async with self._open(method, path, body) as resp:
            return json.loads(await self._read(resp))

    async def health(self) -> dict[str, Any]:
        return await self._json("GET", "/health")

    @contextlib.asynccontextmanager
    async def stream(
        self,
        code: str,
        *,
        session: str | None = None,
        timeout: float | None = None,
        language: str | None = None,
        argv: list[str] | None = None,
        stdin: str | bytes | None = None,
        env: dict[str, str] | None = None,
        filename: str | None = None,
        cwd: str | None = None,
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        body = self._execute_body(code, session, timeout, language, argv, stdin, env, filename, cwd)
        async with self._open("POST", "/v1/execute", body, stream=True) as resp:

            async def events() -> AsyncIterator[dict[str, Any]]:
                import httpx

                try:
                    async for line in resp.aiter_lines():
                        if line.strip():
                            yield json.loads(line)
                except httpx.TransportError as exc:
                    raise self._transport(exc) from exc

            yield events()

    async def execute(
        self,
        code: str,
        *,
        session: str | None = None,
        timeout: float | None = None,
        language: str | None = None,
        argv: list[str] | None = None,
        stdin: str | bytes | None = None,
        env: dict[str, str] | None = None,
        filename: str | None = None,
        cwd: str | None = None,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_output: Callback | None = None,
    ) -> ExecutionResult:
        acc = _Accumulator(on_stdout, on_stderr, on_output)
        async with self.stream(
            code,
            session=session,
            timeout=timeout,
            language=language,
            argv=argv,
            stdin=stdin,
            env=env,
            filename=filename,
            cwd=cwd,
        ) as events:
            async for event in events:
                acc.feed(event)
        return acc.finish()

    def session(self, name: str | None = None, language: str = "python") -> _NewAsyncSession:
        """``s = await acr.session()``, or ``async with acr.session() as s:`` (deleted when the block ends)."""
        return _NewAsyncSession(lambda: self._new_session(name, language))

    async def _new_session(self, name: str | None, language: str) -> AsyncSession:
        body = {"language": language} | ({"name": name} if name else {})
        return AsyncSession(self, await self._json("POST", "/v1/sessions", body))

    async def get_session(self, name_or_id: str) -> AsyncSession:
        return AsyncSession(self, await self._json("GET", f"/v1/sessions/{_q(name_or_id)}"))

    async def sessions(self) -> list[dict[str, Any]]:
        return (await self._json("GET", "/v1/sessions"))["sessions"]

    async def delete_session(self, name_or_id: str) -> None:
        await self._json("DELETE", f"/v1/sessions/{_q(name_or_id)}")

    async def interrupt(self, name_or_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/v1/sessions/{_q(name_or_id)}/interrupt")

    async def restart(self, name_or_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/v1/sessions/{_q(name_or_id)}/restart")

    async def browser_content(
        self, url: str, format: str = "text", *, session: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        body = {"url": url, "format": format} | _present(session_id=session, timeout=timeout)
        return await self._json("POST", "/v1/browser/content", body)

    async def browser_screenshot(
        self,
        url: str,
        *,
        full_page: bool = False,
        width: int | None = None,
        height: int | None = None,
        timeout: float | None = None,
    ) -> bytes:
        body = {"url": url, "full_page": full_page} | _present(width=width, height=height, timeout=timeout)
        async with self._open("POST", "/v1/browser/screenshot", body) as resp:
            return await self._read(resp)

    async def skills(self) -> list[dict[str, Any]]:
        return (await self._json("GET", "/v1/skills"))["skills"]

    async def skill(self, name: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/skills/{_q(name)}")

    async def upload(self, path: str, data: bytes) -> dict[str, Any]:
        async with self._open("PUT", f"/v1/files/{_q(path, '/')}", raw=data) as resp:
            return json.loads(await self._read(resp))

    async def download(self, path: str) -> bytes:
        async with self._open("GET", f"/v1/files/{_q(path, '/')}") as resp:
            return await self._read(resp)


class AsyncSession:
    def __init__(self, runner: AsyncCodeRunner, info: dict[str, Any]) -> None:
        self.runner = runner
        self.info = info
        self.id: str = info["session_id"]
        self.name: str | None = info.get("name")

    async def execute(self, code: str, **kw: Any) -> ExecutionResult:
        return await self.runner.execute(code, session=self.id, **kw)

    def stream(self, code: str, **kw: Any):
        return self.runner.stream(code, session=self.id, **kw)

    async def interrupt(self) -> None:
        await self.runner.interrupt(self.id)

    async def restart(self) -> None:
        await self.runner.restart(self.id)

    async def delete(self) -> None:
        await self.runner.delete_session(self.id)

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(SessionNotFound):
            await self.delete()


class _NewAsyncSession:
    """What ``AsyncCodeRunner.session`` returns: await it, or use it with ``async with``."""

    def __init__(self, create: Callable[[], Any]) -> None:  # create(): a coroutine giving the AsyncSession
        self._create = create
        self._session: AsyncSession | None = None

    def __await__(self):
        return self._create().__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._create()
        return self._session

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.__aexit__(*exc)


def _reason(exc: BaseException) -> str:
    """A short, transport-neutral reason: http.client's and httpx's errors read alike."""
    import http.client

    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen:  # httpx wraps httpcore, which wraps the OSError
        seen.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in seen}
    if any(isinstance(x, TimeoutError) for x in seen) or any(n.endswith("Timeout") for n in names):
        return "timeout"
    if any(isinstance(x, ConnectionRefusedError) for x in seen) or "Connection refused" in str(exc):
        return "connection refused"
    if any(isinstance(x, FileNotFoundError) for x in seen) or "No such file" in str(exc):
        return "no such socket"
    if any(
        isinstance(
            x, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, http.client.IncompleteRead)
        )
        for x in seen
    ) or names & {"RemoteProtocolError", "ReadError", "WriteError"}:
        return "the connection was closed"
    return str(exc) or type(exc).__name__


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _q(value: str, safe: str = "") -> str:
    from urllib.parse import quote

    return quote(value, safe=safe)


def execute(code: str, session: str | None = None, timeout: float | None = None, **kw: Any) -> ExecutionResult:
    """Run ``code`` in the running sandbox; raise :class:`ExecutionError` if it fails."""
    with CodeRunner() as cr:
        result = cr.execute(code, session=session, timeout=timeout, **kw)
    if not result.success:
        raise ExecutionError(result)
    return result
