"""Sessions: a named, persistent backend with a FIFO queue of executions.

Each session holds one backend (kernel or bash). Executions on a session
wait on its lock, which asyncio hands out in arrival order; different
sessions run in parallel. A backend that dies is replaced at once and the
session records that its state was lost. A python session is created at once:
its kernel comes warm from the pool, or is bound when the kernel started for it
is ready, and its first execution waits for that (lazy_kernel.LazyKernel).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .backends import Backend, start_backend
from .errors import Conflict, SessionNotFound, TooManySessions, Unavailable
from .events import Sink
from .kernel_pool import KernelPool
from .lazy_kernel import LazyKernel
from .outcome import EXIT_DIED, Outcome
from .request import ExecuteRequest
from .settings import Settings

log = logging.getLogger("coderunner_gateway")


@dataclass
class Session:
    id: str
    name: str | None
    language: str
    backend: Backend
    created_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    executions: int = 0
    restarts: int = 0
    state_lost: bool = False
    running: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def info(self) -> dict[str, Any]:
        kernel = getattr(self.backend, "state", "ready")
        info: dict[str, Any] = {
            "session_id": self.id,
            "name": self.name,
            "language": self.language,
            "kernel": kernel,  # ready | starting (the first execution waits for it) | failed
            "created_at": self.created_at,
            "last_used": self.last_used,
            "executions": self.executions,
            "busy": self.running > 0,
            "queued": max(0, self.running - 1),
            "restarts": self.restarts,
            "state_lost": self.state_lost,
        }
        if kernel == "failed":
            info["kernel_error"] = getattr(self.backend, "error", None)
        return info


class SessionManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = KernelPool(settings)
        self.sessions: dict[str, Session] = {}
        self.closing = False
        self._reaper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # old backends shutting down
        self._creating = 0

    def start(self) -> None:
        self.pool.start()
        self._reaper = asyncio.create_task(self._reap())

    # -- lookup -------------------------------------------------------------
    def get(self, key: str) -> Session:
        session = self.sessions.get(key)
        if session is None:
            session = next((s for s in self.sessions.values() if s.name == key), None)
        if session is None:
            raise SessionNotFound(key)
        return session

    def describe(self) -> list[dict[str, Any]]:
        return [s.info() for s in self.sessions.values()]

    # -- lifecycle ----------------------------------------------------------
    async def create(self, name: str | None = None, language: str = "python") -> Session:
        if self.closing:
            raise Unavailable("the gateway is shutting down")
        if name is not None and any(s.name == name or s.id == name for s in self.sessions.values()):
            raise Conflict(
                f"a session named {name!r} already exists: use it, or delete it first", code="session_exists"
            )
        if len(self.sessions) + self._creating >= self.settings.max_sessions:
            raise TooManySessions(
                f"the gateway already has {self.settings.max_sessions} live sessions (its limit): "
                "delete one with DELETE /v1/sessions/{id}, or start the gateway with a higher --max-sessions"
            )
        self._creating += 1
        try:
            backend = await self._new_backend(language)
        finally:
            self._creating -= 1
        sid = "s-" + secrets.token_hex(6)
        session = Session(sid, name, language, backend)
        self.sessions[sid] = session
        return session

    async def _new_backend(self, language: str) -> Backend:
        if language == "python":  # at once: a warm kernel, or one bound when it has started
            return LazyKernel(self.pool, await self.pool.claim())
        return await start_backend(language, self.settings)

    async def delete(self, key: str) -> None:
        session = self.get(key)
        self.sessions.pop(session.id, None)
        await session.backend.shutdown()

    async def interrupt(self, key: str) -> Session:
        session = self.get(key)
        if session.running:
            await session.backend.interrupt()
        return session

    async def restart(self, key: str) -> Session:
        session = self.get(key)
        await self._replace(session, session.backend)
        session.state_lost = False  # asked for: a clean slate, nothing lost by surprise
        return session

    async def _replace(self, session: Session, old: Backend) -> None:
        """Give ``session`` a fresh backend unless someone already did."""
        if session.backend is not old or self.closing or self.sessions.get(session.id) is not session:
            return  # already replaced, shutting down, or deleted
        session.backend = await self._new_backend(session.language)
        session.restarts += 1
        task = asyncio.create_task(old.shutdown())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- execution ----------------------------------------------------------
    async def execute(
        self, session: Session, req: ExecuteRequest, sink: Sink, *, output_limit: int | None = None
    ) -> Outcome:
        """Run ``req`` on ``session`` after the executions queued before it. ``output_limit``:
        the bytes of output the consumer keeps (a kernel cuts the rest where it is produced)."""
        session.running += 1
        self.pool.executing(True)
        try:
            async with session.lock:
                if self.sessions.get(session.id) is not session:
                    return Outcome("died", EXIT_DIED, "the session was deleted before this execution ran")
                session.last_used = time.time()
                session.executions += 1
                backend = session.backend
                try:
                    outcome = await backend.execute(req, sink, output_limit)
                except asyncio.CancelledError:
                    # the client went away: stop what it started
                    with contextlib.suppress(Exception):
                        await backend.interrupt()
                    raise
                except Exception:
                    if session.backend is backend:
                        raise
                    # restarted by a request while this ran (its channels closed under it)
                    return Outcome(
                        "died",
                        EXIT_DIED,
                        "the session was restarted while this ran; its state was reset",
                        state_lost=True,
                    )
                if outcome.state_lost or not await backend.is_alive():
                    if session.backend is not backend:  # restarted by a request while this ran
                        outcome = Outcome(
                            "died",
                            EXIT_DIED,
                            "the session was restarted while this ran; its state was reset",
                            state_lost=True,
                        )
                    else:
                        outcome.state_lost = True
                        session.state_lost = True
                        await self._replace(session, backend)
                session.last_used = time.time()
                return outcome
        finally:
            session.running -= 1
            self.pool.executing(False)

    # -- housekeeping -------------------------------------------------------
    async def _reap(self) -> None:
        ttl = self.settings.session_ttl
        interval = max(0.2, min(ttl / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            cutoff = time.time() - ttl
            for session in list(self.sessions.values()):
                if not session.running and session.last_used < cutoff:
                    log.info("session %s idle for %.0fs: expired", session.id, ttl)
                    self.sessions.pop(session.id, None)
                    await session.backend.shutdown()

    async def close(self) -> None:
        self.closing = True
        if self._reaper is not None:
            self._reaper.cancel()
        sessions, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(s.backend.shutdown() for s in sessions), self.pool.close(), return_exceptions=True)
