"""Run code as a fresh process: ``python`` or ``bash``, like a terminal would.

Python scripts start under a small bootstrap (``programs/script_bootstrap.py``) that points
``sys.stdout``/``sys.stderr`` at one pipe carrying tagged records. Two
separate pipes cannot tell which of two writes came first; one tagged pipe
can, so interleaved stdout and stderr arrive in the order they were written.
Output written straight to file descriptors 1 and 2 (by child processes, C
code) still arrives on its own pipes, in order within each. The bootstrap
also reports an uncaught exception as a structured record.

The process runs in its own process group (session); a timeout, a
cancelled request or gateway shutdown kills the whole group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import programs
from .errors import process_limit
from .events import Sink
from .jail import Cell, write_cell_file
from .outcome import Outcome
from .request import ExecuteRequest
from .script_io import ExitProtocol, channel_pipe, feed, pump, pump_channel
from .settings import Settings
from .validation import MAX_ARG_BYTES

BOOTSTRAP = programs.load("script_bootstrap.py")
# A warm interpreter: started ahead in a cell of its own, it waits for one script's
# request on a pipe (its argv and environment, marshalled), then runs BOOTSTRAP as a cold
# start would. It imports nothing new (marshal is loaded at start-up) and serves once.
WAITER = programs.load("script_waiter.py")
WARM_BOOTSTRAP = WAITER + BOOTSTRAP
# variables read once at interpreter start-up: a request that sets one gets a cold start
STARTUP_ENV = ("PYTHON", "LD_", "LC_", "LANG", "MALLOC", "GLIBC_")


@dataclass
class _Warm:
    proc: Any
    exited: asyncio.Event
    cell: Any
    chan_r: int
    chan_fd: int  # its number in the child
    ctl_w: int


def _bash_script(code: str, path: str, name: str) -> list[str]:
    """bash's arguments for a script: given with ``-c`` under the user's name for it, so ``$0``
    and bash's own messages (``name: line 3: foo: command not found``) say ``name``; from the
    cell's file when it is too long for one argument (``$0`` is then that file's path)."""
    if "\x00" not in code and len(code.encode("utf-8", "surrogatepass")) <= MAX_ARG_BYTES:
        return ["-c", code, name]
    return [path]


def _safe_name(filename: str | None, language: str) -> str:
    default = "main.py" if language == "python" else "main.sh"
    if not filename:
        return default
    name = os.path.basename(filename)
    return name if name not in ("", ".", "..") else default


def _bootstrap_args(req: ExecuteRequest, path: str, shown: str) -> list[str]:
    """The bootstrap's arguments after its channel's fd: the script, its name, its folder, argv."""
    return [path, shown, req.cwd or "", shown if req.filename else "-c", *req.argv]


class ScriptRunner:
    """Starts script processes and remembers them so shutdown can kill them. Keeps
    ``settings.script_pool`` python interpreters warm, each in its own cell, so a script
    does not wait for one to start; each serves one script and is never reused."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running: dict[int, Any] = {}  # pid -> its cell
        self._warm: list[_Warm] = []
        self._refill: asyncio.Task | None = None
        self._closed = False

    def start(self) -> None:
        self.refill()

    def kill_all(self) -> None:
        """End every running script and all it started, and the warm ones (shutdown)."""
        self._closed = True
        for cell in list(self.running.values()):
            self.settings.jail.kill(cell)
        for w in self._warm:
            self.settings.jail.kill(w.cell)

    def refill(self) -> None:
        if self._closed or self.settings.script_pool <= 0:
            return
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._fill())

    async def _fill(self) -> None:
        import logging

        failures = 0
        while not self._closed and len(self._warm) < self.settings.script_pool and failures < 3:
            try:
                self._warm.append(await self._spawn_warm())
            except Exception as exc:
                failures += 1
                if limit := process_limit(exc):  # said in one line: code holds every process it may have
                    logging.getLogger("coderunner_gateway").warning("no warm interpreter: %s", limit.message)
                else:
                    logging.getLogger("coderunner_gateway").exception("could not start a warm interpreter")
                await asyncio.sleep(1)

    async def _spawn_warm(self) -> _Warm:
        jail = self.settings.jail
        cell = jail.open_cell("run")
        chan_r, chan_w = channel_pipe()
        ctl_r, ctl_w = os.pipe()
        try:
            cmd = [self.settings.python, "-u", "-c", WARM_BOOTSTRAP, str(ctl_r)]
            proc, exited = await self._spawn(cell, cmd, stdin=True, env=None, pass_fds=(chan_w, ctl_r))
        except BaseException:
            for fd in (chan_r, chan_w, ctl_r, ctl_w):
                os.close(fd)
            jail.close_cell(cell)
            raise
        os.close(chan_w)
        os.close(ctl_r)
        return _Warm(proc, exited, cell, chan_r, chan_w, ctl_w)

    def _take_warm(self, env: Mapping[str, str]) -> _Warm | None:
        if any(k.startswith(STARTUP_ENV) for k in env):
            return None
        while self._warm:
            w = self._warm.pop(0)
            if w.proc.returncode is None:
                return w  # refilled once handed over (run): a spawn now would delay this script's start
            os.close(w.chan_r)
            os.close(w.ctl_w)
            self.settings.jail.close_cell(w.cell)
        self.refill()
        return None

    async def _spawn(
        self, cell: Cell, cmd: list[str], *, stdin: bool, env: Mapping[str, str] | None, pass_fds: tuple[int, ...]
    ) -> tuple[Any, asyncio.Event]:
        jail = self.settings.jail
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: ExitProtocol(limit=1 << 16, loop=loop),
                *jail.command(cell, cmd),
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.settings.workspace,
                env=jail.env(cell, self.settings.child_env(env)),
                pass_fds=pass_fds,
                **jail.popen_kwargs(cell),
            )
        except (OSError, RuntimeError) as exc:
            if limit := process_limit(exc):  # fork refused (EAGAIN): said as the limit it is
                raise limit from exc
            raise
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        cell.pid = proc.pid
        return proc, protocol.exited

    async def run(self, req: ExecuteRequest, sink: Sink) -> Outcome:
        language, stdin, env, filename, cwd = req.language, req.stdin, req.env, req.filename, req.cwd
        jail = self.settings.jail
        warm = self._take_warm(env) if language == "python" else None
        cell = warm.cell if warm is not None else jail.open_cell("run")
        path = cell.path(_safe_name(filename, language))
        try:
            await asyncio.to_thread(write_cell_file, path, req.code)  # up to the request limit: off the loop
        except BaseException:
            if warm is not None:
                os.close(warm.chan_r)
                os.close(warm.ctl_w)
            jail.close_cell(cell)
            raise
        jail.give(cell, path)
        # like `python -c`: argv[0] "-c" and "<string>" in tracebacks, unless named
        # with a cwd, a filename is the script's path relative to it (the user's own name for it)
        shown = (os.path.normpath(filename) if cwd else _safe_name(filename, language)) if filename else "<string>"
        chan_r = chan_w = -1
        proc = None
        try:
            if warm is not None:
                chan_r = warm.chan_r
                proc, exited = warm.proc, warm.exited
                self._hand_over(warm, req, path, shown)
                # its fork and exec run on the loop while the script runs, not before; the fork is
                # the gateway's uid until its exec, never the code's (jail.py), so code that
                # stops what it can meanwhile cannot stop the gateway (test_setid.py)
                self.refill()
            elif language == "python":
                chan_r, chan_w = channel_pipe()
                cmd = [self.settings.python, "-u", "-c", BOOTSTRAP, str(chan_w), *_bootstrap_args(req, path, shown)]
                proc, exited = await self._spawn(cell, cmd, stdin=stdin is not None, env=env, pass_fds=(chan_w,))
                os.close(chan_w)
                chan_w = -1
            else:
                cmd = self._bash_command(req, path, shown)
                proc, exited = await self._spawn(cell, cmd, stdin=stdin is not None, env=env, pass_fds=())
            self.running[proc.pid] = cell
            try:
                return await self._supervise(proc, exited, sink, chan_r, stdin, req.timeout, cell)
            finally:
                chan_r = -1  # owned (and closed) by the reader's transport
                jail.kill(cell)
                self.running.pop(proc.pid, None)
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        finally:
            for fd in (chan_r, chan_w):
                if fd >= 0:
                    os.close(fd)
            jail.close_cell(cell)

    def _hand_over(self, warm: _Warm, req: ExecuteRequest, path: str, shown: str) -> None:
        """Send a warm interpreter its script's argv and environment, and close its control pipe."""
        import marshal

        message = marshal.dumps(
            {
                "env": self.settings.jail.env(warm.cell, self.settings.child_env(req.env)),
                "argv": [str(warm.chan_fd), *_bootstrap_args(req, path, shown)],
            }
        )
        with contextlib.suppress(BrokenPipeError):
            os.write(warm.ctl_w, len(message).to_bytes(4, "big") + message)  # fits a pipe's buffer
        os.close(warm.ctl_w)
        if req.stdin is None:
            warm.proc.stdin.close()

    def _bash_command(self, req: ExecuteRequest, path: str, shown: str) -> list[str]:
        cmd = [self.settings.bash, *_bash_script(req.code, path, shown if req.filename else "bash"), *req.argv]
        if req.cwd:  # the cell starts in the workspace: bash moves on to the folder, then runs the script
            cmd = [
                self.settings.bash,
                "-c",
                'cd -- "$1" || exit 1; shift; exec "$0" "$@"',
                cmd[0],
                req.cwd,
                *cmd[1:],
            ]
        return cmd

    async def _supervise(
        self, proc, exited: asyncio.Event, sink: Sink, chan_r: int, stdin: bytes | None, timeout: float | None, cell
    ) -> Outcome:
        errors: list[dict[str, Any]] = []
        exits: list[int] = []
        readers = [
            asyncio.create_task(pump(proc.stdout, "stdout", sink)),
            asyncio.create_task(pump(proc.stderr, "stderr", sink)),
        ]
        if chan_r >= 0:
            readers.append(asyncio.create_task(pump_channel(chan_r, sink, errors, exits)))
        feeder = asyncio.create_task(feed(proc, stdin)) if stdin is not None else None
        jail = self.settings.jail
        try:
            try:
                await asyncio.wait_for(exited.wait(), timeout)
                outcome = None
            except TimeoutError:
                jail.kill(cell)
                await exited.wait()
                outcome = Outcome.timeout(timeout or 0, "the script and every process it started were killed")
            # the main process is gone: end stragglers so the pipes reach EOF
            jail.kill(cell)
            await asyncio.gather(*readers)
        finally:
            for task in [*readers, feeder]:
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(*[t for t in [*readers, feeder] if t is not None], return_exceptions=True)
        if outcome is None:
            rc = proc.returncode
            if jail.name == "bwrap" and not exits and 128 < rc < 128 + 65:
                rc = 128 - rc  # bwrap reports a signal N as 128+N: the code did not exit by itself
            outcome = Outcome.from_returncode(rc)
            if self._closed and outcome.status == "died":  # killed by kill_all: say why, not only the signal
                outcome.message = (
                    "the sandbox shut down (coderunner down, or its gateway was stopped) and ended the script"
                )
        if errors and outcome.status != "timeout":
            await sink.emit({"type": "error", **errors[-1]})
            if errors[-1].get("ename") == "KeyboardInterrupt":
                outcome.status = "interrupted"
        return outcome
