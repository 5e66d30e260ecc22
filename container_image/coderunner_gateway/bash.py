"""A session's bash backend: one long-lived ``bash`` in a cell of its own."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import secrets
import shlex
from typing import Any

from .errors import process_limit
from .events import Sink
from .jail import write_cell_file
from .outcome import EXIT_DIED, Outcome
from .request import ExecuteRequest
from .settings import Settings


class BashProcess:
    """A long-lived ``bash`` whose state (cwd, variables, functions) persists.

    Each execution sources a file and then prints a marker with ``$?`` on
    stdout and a marker on stderr, so we know where its output ends. Bash
    cannot be interrupted without ending what it is running, so an interrupt
    or a timeout ends the process; the session then gets a fresh bash.
    """

    language = "bash"

    def __init__(self, proc: asyncio.subprocess.Process, settings: Settings, cell: Any) -> None:
        if proc.stdin is None or proc.stdout is None or proc.stderr is None:
            raise ValueError("bash must be started with pipes for stdin, stdout and stderr")
        self.proc = proc
        self.stdin, self.stdout, self.stderr = proc.stdin, proc.stdout, proc.stderr
        self.settings = settings
        self.cell = cell

    @classmethod
    async def start(cls, settings: Settings) -> BashProcess:
        jail = settings.jail
        cell = jail.open_cell("bash")
        try:
            proc = await asyncio.create_subprocess_exec(
                *jail.command(cell, [settings.bash, "--noprofile", "--norc"]),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=settings.workspace,
                env=jail.env(cell, settings.child_env()),
                **jail.popen_kwargs(cell),
            )
        except BaseException as exc:
            jail.close_cell(cell)
            if limit := process_limit(exc):  # a fork refused (EAGAIN): the process limit, in one line
                raise limit from exc
            raise
        cell.pid = proc.pid
        return cls(proc, settings, cell)

    async def is_alive(self) -> bool:
        return self.proc.returncode is None

    async def interrupt(self) -> None:
        self._kill()

    def _kill(self) -> None:
        self.settings.jail.kill(self.cell)

    async def shutdown(self) -> None:
        self._kill()
        with contextlib.suppress(Exception):
            await self.proc.wait()
        self.settings.jail.close_cell(self.cell)

    async def execute(self, req: ExecuteRequest, sink: Sink, output_limit: int | None = None) -> Outcome:
        # output_limit: a pipe has backpressure; the Collector's cap suffices
        marker = f"\x1e__coderunner_{secrets.token_hex(8)}__".encode()
        path = self.cell.path(f"cell-{secrets.token_hex(6)}.sh")
        m = marker.decode()
        command = (
            f"source {shlex.quote(path)} </dev/null\n"
            f"__cr_rc=$?; printf '%s%d\\n' '{m}' \"$__cr_rc\"; printf '%s\\n' '{m}' >&2\n"
        )
        try:
            await asyncio.to_thread(write_cell_file, path, req.code)  # up to the request limit: off the loop
            self.settings.jail.give(self.cell, path)
            self.stdin.write(command.encode())
            await self.stdin.drain()
            out = asyncio.create_task(_read_until(self.stdout, marker, "stdout", sink))
            err = asyncio.create_task(_read_until(self.stderr, marker, "stderr", sink))
            try:
                rc, _ = await asyncio.wait_for(asyncio.gather(out, err), req.timeout)
            except TimeoutError:
                self._kill()
                o = Outcome.timeout(
                    req.timeout or 0, "bash was killed; the session got a fresh bash and its state was lost"
                )
                o.state_lost = True
                return o
            if rc is None:  # bash ended: `exit N`, a kill, or an interrupt
                await self.proc.wait()
                code_ = self.proc.returncode
                if code_ is not None and code_ < 0:
                    o = Outcome.from_returncode(code_)
                else:
                    o = Outcome.from_exit(code_ or 0)
                o.state_lost = True
                o.message = "bash exited; the session got a fresh bash and its state was lost"
                return o
            return Outcome.from_exit(rc)
        except (BrokenPipeError, ConnectionResetError):
            return Outcome(
                "died",
                EXIT_DIED,
                "bash had ended; the session got a fresh bash and its state was lost",
                state_lost=True,
            )
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)


async def _read_until(reader: asyncio.StreamReader, marker: bytes, name: str, sink: Sink) -> int | None:
    """Emit output up to ``marker``; return the number after it (None at EOF)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    buf = b""
    keep = len(marker) - 1
    while True:
        idx = buf.find(marker)
        if idx >= 0:
            if text := decoder.decode(buf[:idx], final=True):
                await sink.emit({"type": name, "text": text})
            rest = buf[idx + len(marker) :]
            while b"\n" not in rest:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                rest += chunk
            digits = rest.split(b"\n", 1)[0].strip()
            return int(digits) if digits.isdigit() else 0
        if len(buf) > keep:
            cut = len(buf) - keep
            if text := decoder.decode(buf[:cut]):
                await sink.emit({"type": name, "text": text})
            buf = buf[cut:]
        chunk = await reader.read(65536)
        if not chunk:
            if text := decoder.decode(buf, final=True):
                await sink.emit({"type": name, "text": text})
            return None
        buf += chunk
