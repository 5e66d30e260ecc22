"""What `coderunner exec --session` does besides streaming: say when it waits behind other
executions, and make Ctrl-C stick on code that ignores it.

Waiting: the gateway runs a session's executions one at a time, in order. Before
sending ours we note how many are in the session (``busy`` + ``queued``) and how
many it has started (``executions``); while ours has produced nothing, the
difference says how many are still ahead of it.

Ctrl-C: the first interrupts the kernel, as Ctrl-C does to python. If the code
has not stopped 3 seconds later (it catches or ignores KeyboardInterrupt), or on
a second Ctrl-C, the session's kernel is restarted: the code ends, and so does
the session's state. A third Ctrl-C leaves at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

QUEUE_NOTICE_AFTER = 1.0  # seconds an execution waits before we say it is queued
INTERRUPT_GRACE = 3.0  # seconds the code has to stop after an interrupt before the kernel is restarted


class SessionWatch:
    def __init__(self, session: str) -> None:
        self.session = session
        self.interrupts = 0
        self.restarted = False
        self.failed: str | None = None
        self.left_queue = False
        self._started = threading.Event()  # our code runs (or has ended)
        self._done = threading.Event()  # the stream ended
        self._again = threading.Event()  # a second Ctrl-C
        self._ahead = 0
        self._executions = 0
        self._threads: list[threading.Thread] = []
        self._old_handler: Any = None

    # -- before sending the code -------------------------------------------------------
    def before(self, cr) -> None:
        """Note what is ahead of us (nothing to note for a session that does not exist yet)."""
        from ..errors import CoderunnerError

        try:
            info = cr.get_session(self.session).info
        except CoderunnerError:
            return
        self._ahead = int(bool(info.get("busy"))) + int(info.get("queued") or 0)
        self._executions = int(info.get("executions") or 0)

    def __enter__(self) -> SessionWatch:
        if self._ahead:
            self._spawn(self._say_queued)
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        self._started.set()
        self._done.set()
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)

    # -- while streaming ----------------------------------------------------------------
    def event(self, kind: str | None) -> None:
        if kind != "start":
            self._started.set()
        if kind == "done":
            self._done.set()

    def finish(self, timeout: float = 15) -> None:
        """Wait for the Ctrl-C handling to be over (so ``restarted`` is known)."""
        self._done.set()
        for t in self._threads:
            t.join(timeout)

    # -- threads ------------------------------------------------------------------------
    def _spawn(self, target) -> None:
        t = threading.Thread(target=target, daemon=True)
        self._threads.append(t)
        t.start()

    def _client(self):
        from ..client import CodeRunner

        return CodeRunner(timeout=10)

    def _say_queued(self) -> None:
        from ..errors import CoderunnerError

        if self._started.wait(QUEUE_NOTICE_AFTER):
            return
        said = None
        try:
            with self._client() as cr:
                while not self._started.is_set():
                    info = cr.get_session(self.session).info
                    ahead = self._ahead - (int(info.get("executions") or 0) - self._executions)
                    if ahead <= 0:
                        return
                    if ahead != said:
                        print(
                            f"coderunner: queued behind {ahead} execution(s) on session {self.session}",
                            file=sys.stderr,
                            flush=True,
                        )
                        said = ahead
                    self._started.wait(0.5)
        except CoderunnerError:
            return

    def _still_queued(self) -> bool:
        from ..errors import CoderunnerError

        if not self._ahead or self._started.is_set():
            return False
        try:
            with self._client() as cr:
                info = cr.get_session(self.session).info
        except CoderunnerError:
            return False
        return self._ahead - (int(info.get("executions") or 0) - self._executions) > 0

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.interrupts += 1
        if self.interrupts == 1 and self._still_queued():
            self.left_queue = True  # leaving drops ours from the queue; the code running is someone else's
            raise KeyboardInterrupt
        if self.interrupts == 1:
            self._spawn(self._stop)
        elif self.interrupts == 2:
            self._again.set()
        else:
            raise KeyboardInterrupt

    def _stop(self) -> None:
        """Interrupt; restart the kernel if the code is still running INTERRUPT_GRACE later."""
        from ..errors import CoderunnerError

        try:
            with self._client() as cr:
                cr.interrupt(self.session)
                deadline = threading.Event()
                timer = threading.Timer(INTERRUPT_GRACE, deadline.set)
                timer.daemon = True
                timer.start()
                while not (self._done.is_set() or self._again.is_set() or deadline.is_set()):
                    self._done.wait(0.05)
                timer.cancel()
                if self._done.is_set():
                    return
                cr.restart(self.session)
                self.restarted = True
        except CoderunnerError as exc:
            self.failed = exc.message
