"""The gateway's running state, and the one way code is run for every route (HTTP and MCP)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from .browser import Browser
from .events import Sink
from .outcome import Outcome
from .request import ExecuteRequest
from .scripts import ScriptRunner
from .sessions import SessionManager
from .settings import Settings
from .skills import SkillStore, default_public_dir


class Gateway:
    """Sessions, scripts, skills and the browser of one gateway; started and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = SessionManager(settings)
        self.scripts = ScriptRunner(settings)
        self.skills = SkillStore(
            Path(settings.skills_dir) if settings.skills_dir else default_public_dir(),
            Path(settings.user_skills_dir) if settings.user_skills_dir else None,
            Path(settings.runtime_dir) / "skills",
        )
        self.browser = Browser(settings.chromium, settings.jail)
        self.started = time.time()
        self._closed = False

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

    async def run(self, sink: Sink, req: ExecuteRequest, *, output_limit: int | None = None) -> None:
        """Emit ``start``, the code's events and ``done``. ``output_limit``: the bytes of output
        the consumer keeps (a kernel cuts the rest at the source); None, all of it."""
        session = req.session
        await sink.emit({"type": "start", "session_id": session.id if session else None})
        t0 = time.perf_counter()
        if session is not None:
            outcome = await self.sessions.execute(session, req, sink, output_limit=output_limit)
        else:
            outcome = await self.scripts.run(req, sink)
        await sink.emit(done_event(outcome, time.perf_counter() - t0))


def done_event(outcome: Outcome, elapsed: float) -> dict[str, Any]:
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
