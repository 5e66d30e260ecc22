"""Session backends: a Jupyter kernel for python, a bash process for bash.

Both expose the same small interface (:class:`Backend`) so sessions do not
care which one they hold. Kernels are driven with jupyter_client's async API
over IPC sockets in the gateway's private runtime dir; no Jupyter Server.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import queue
import secrets
import shlex
from typing import Any, Protocol

from .events import Sink
from .outcome import EXIT_INTERRUPTED, Outcome, system_exit_code, system_exit_prints
from .settings import Settings

# Runs once in every new kernel, silently.
KERNEL_INIT = r"""
def _coderunner_init():
    import contextlib, sys, warnings
    # SystemExit is reported as an exit code; IPython's hint is noise here
    warnings.filterwarnings("ignore", message="To exit: use")
    ip = get_ipython()
    try:
        ip.run_line_magic("colors", "nocolor")
    except Exception:
        pass
    if hasattr(ip, "_tee"):
        # IPython >= 9 copies every byte of output into its history: a
        # flood of output would grow the kernel without bound
        ip._tee = lambda channel: contextlib.nullcontext()
    out, err = sys.stdout, sys.stderr
    last = [None]

    # Output cap for aggregated requests (metadata "coderunner_output_limit"):
    # PUB/SUB has no backpressure, so a flood must be cut here, not queued.
    # What was sent per stream ("sent_*") lets the gateway count what PUB/SUB lost on the way.
    cap = {"msg": None, "limit": None, "used": 0, "stdout": 0, "stderr": 0, "sent_stdout": 0, "sent_stderr": 0}

    def allowance(text, name):
        parent = ip.kernel.get_parent("shell") or {}
        msg_id = parent.get("header", {}).get("msg_id")
        if msg_id != cap["msg"]:
            cap.update(msg=msg_id, limit=(parent.get("metadata") or {}).get("coderunner_output_limit"),
                       used=0, stdout=0, stderr=0, sent_stdout=0, sent_stderr=0)
        size = len(text.encode("utf-8", "surrogatepass"))
        room = size if cap["limit"] is None else cap["limit"] - cap["used"]
        if size <= room:
            cap["used"] += size
            cap["sent_" + name] += size
            return text
        head = text.encode("utf-8", "surrogatepass")[:max(room, 0)].decode("utf-8", "ignore")
        kept = len(head.encode("utf-8", "surrogatepass"))
        cap["used"] += kept
        cap[name] += size - kept
        cap["sent_" + name] += kept
        return head

    def counts(*keys):
        # the counters belong to the execution that last wrote: one that wrote nothing has 0
        parent = ip.kernel.get_parent("shell") or {}
        if parent.get("header", {}).get("msg_id") != cap["msg"]:
            return {"stdout": 0, "stderr": 0}
        return {"stdout": cap[keys[0]], "stderr": cap[keys[1]]}

    mod = type(sys)("__coderunner__")
    mod.dropped = lambda: counts("stdout", "stderr")
    mod.sent = lambda: counts("sent_stdout", "sent_stderr")

    # ... reported in every execute_reply's metadata (cheaper than user_expressions)
    finish = ip.kernel.finish_metadata

    def finish_metadata(parent, metadata, reply_content):
        metadata = finish(parent, metadata, reply_content)
        metadata["coderunner"] = {"sent": mod.sent(), "dropped": mod.dropped()}
        return metadata

    ip.kernel.finish_metadata = finish_metadata
    sys.modules["__coderunner__"] = mod

    # ipykernel buffers each stream apart; flushing the other stream when
    # the writer switches keeps stdout and stderr in the order written.
    # A subclass, not an instance attribute: IPython re-wraps `write` per cell.
    def ordered(stream, other):
        base = type(stream)

        # ipykernel sends all that was written in a flush interval as ONE message, which
        # the gateway must then hold whole (300 MB for a fast loop): flush every 128 KiB, as
        # ZeroMQ may queue up to 1000 messages. The flush waits for the kernel's I/O thread,
        # so a flood slows the code that prints.
        pending = [0]

        class Ordered(base):
            def write(self, text):
                if last[0] is other:
                    other.flush()
                last[0] = self
                if not isinstance(text, str):
                    return base.write(self, text)
                text = allowance(text, self.name)
                if not text:
                    return 0
                written = 0
                for i in range(0, len(text), 65536):
                    piece = text[i:i + 65536]
                    written += base.write(self, piece) or 0
                    pending[0] += len(piece)
                    if pending[0] >= 1 << 17:
                        pending[0] = 0
                        self.flush()
                return written

        Ordered.__name__ = base.__name__
        stream.__class__ = Ordered
        if hasattr(stream, "flush_interval"):
            stream.flush_interval = 0.005  # first byte fast; bursts still batch

    ordered(out, err)
    ordered(err, out)
_coderunner_init()
del _coderunner_init
"""

# A second cell: the first one's own output tee put a bound ``write`` on
# each stream when it ended, shadowing the subclass; with the tee off now,
# removing it sticks.
KERNEL_INIT_2 = r"""
import sys as _sys
for _s in (_sys.stdout, _sys.stderr):
    _s.__dict__.pop("write", None)
del _sys, _s
"""


class Backend(Protocol):
    language: str

    async def execute(
        self, code: str, timeout: float | None, sink: Sink, output_limit: int | None = None
    ) -> Outcome: ...
    async def interrupt(self) -> None: ...
    async def is_alive(self) -> bool: ...
    async def shutdown(self) -> None: ...


class PythonKernel:
    language = "python"
    INTERRUPT_GRACE = 5.0

    def __init__(self, km: Any, kc: Any, cell: Any, settings: Settings) -> None:
        self.km = km
        self.kc = kc
        self.cell = cell
        self.settings = settings

    @classmethod
    async def start(cls, settings: Settings) -> PythonKernel:
        from jupyter_client import AsyncKernelManager

        jail = settings.jail
        cell = jail.open_cell("kernel")
        try:
            km = AsyncKernelManager(
                kernel_name="python3",
                transport="ipc",
                ip=cell.path("k"),
                connection_file=cell.path("kernel.json"),
            )
            # the kernel runs our Python, whatever kernelspecs the machine has, inside its cell;
            # it interrupts itself on a control message (a signal would reach only the cell's bwrap)
            spec = km.kernel_spec
            spec.argv = jail.command(cell, [settings.python, *spec.argv[1:]])
            spec.interrupt_mode = "message"
            km.write_connection_file()
            os.chmod(km.connection_file, 0o640)  # the cell's group (setid) reads it; nobody else
            jail.give(cell, km.connection_file)
            # independent: no parent-pid poller (the gateway's pid means nothing in the cell's
            # PID namespace); the cell dies with the gateway instead
            await km.start_kernel(
                cwd=settings.workspace,
                env=jail.env(cell, settings.child_env(kernel=True)),
                independent=True,
                **jail.popen_kwargs(cell),
            )
            cell.pid = km.provisioner.pid if km.provisioner is not None else None
        except BaseException:
            jail.close_cell(cell)
            raise
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            kernel = cls(km, kc, cell, settings)
            await kernel._run_silent(KERNEL_INIT)
            await kernel._run_silent(KERNEL_INIT_2)
        except BaseException:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            jail.close_cell(cell)
            raise
        return kernel

    async def _run_silent(self, code: str) -> None:
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        if await self._reply(msg_id, timeout=30) is None:
            raise RuntimeError("the new kernel did not answer its set-up code")

    async def is_alive(self) -> bool:
        return bool(await self.km.is_alive())

    async def interrupt(self) -> None:
        await self.km.interrupt_kernel()

    async def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            await self.km.shutdown_kernel(now=True)
        with contextlib.suppress(Exception):
            await self.km._async_cleanup_resources()
        self.settings.jail.close_cell(self.cell)

    async def execute(self, code: str, timeout: float | None, sink: Sink, output_limit: int | None = None) -> Outcome:
        loop = asyncio.get_running_loop()
        kc = self.kc
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "allow_stdin": False,
            "stop_on_error": False,
            "user_expressions": {},
        }
        metadata = {}
        if output_limit is not None:
            metadata["coderunner_output_limit"] = output_limit
        received = {"stdout": 0, "stderr": 0}
        request = kc.session.msg("execute_request", content, metadata=metadata)
        kc.shell_channel.send(request)
        msg_id = request["header"]["msg_id"]
        deadline = loop.time() + timeout if timeout else None
        interrupted_at: float | None = None
        error: dict[str, Any] | None = None
        while True:
            now = loop.time()
            if deadline is not None and interrupted_at is None and now >= deadline:
                interrupted_at = now
                await self.interrupt()
            if interrupted_at is not None and now - interrupted_at > self.INTERRUPT_GRACE:
                o = Outcome.timeout(
                    timeout or 0, "the kernel ignored the interrupt and was replaced; the session's state was lost"
                )
                o.state_lost = True
                return o
            wait = 0.25 if deadline is None or interrupted_at is not None else max(0.0, min(0.25, deadline - now))
            try:
                msg = await kc.get_iopub_msg(timeout=wait)
            except queue.Empty:
                if not await self.is_alive():
                    return Outcome(
                        "died",
                        137,
                        "the kernel died; the session was given a fresh kernel and its state was lost",
                        state_lost=True,
                    )
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                break
            if kind == "stream":
                if content["name"] in received:
                    received[content["name"]] += len(content["text"].encode("utf-8", "surrogatepass"))
                await sink.emit({"type": content["name"], "text": content["text"]})
            elif kind in ("display_data", "update_display_data"):
                ev = {"type": "display", "data": content.get("data", {})}
                if content.get("metadata"):
                    ev["metadata"] = content["metadata"]
                await sink.emit(ev)
            elif kind == "execute_result":
                await sink.emit(
                    {
                        "type": "result",
                        "data": content.get("data", {}),
                        "execution_count": content.get("execution_count"),
                    }
                )
            elif kind == "error":
                error = {
                    "ename": content.get("ename", ""),
                    "evalue": content.get("evalue", ""),
                    "traceback": content.get("traceback", []),
                }
                if error["ename"] == "SystemExit" and system_exit_prints(error["evalue"]):
                    # python prints a non-integer exit code (sys.exit("msg")) on stderr
                    await sink.emit({"type": "stderr", "text": error["evalue"] + "\n"})
                if error["ename"] == "SystemExit" or (
                    interrupted_at is not None and error["ename"] == "KeyboardInterrupt"
                ):
                    continue
                await sink.emit({"type": "error", **error})
        if interrupted_at is not None:
            outcome = Outcome.timeout(timeout or 0, "the kernel was interrupted; the session keeps its state")
        elif error is None:
            outcome = Outcome("ok", 0)
        elif error["ename"] == "SystemExit":
            outcome = Outcome.from_exit(system_exit_code(error["evalue"]))
        elif error["ename"] == "KeyboardInterrupt":
            outcome = Outcome("interrupted", EXIT_INTERRUPTED)
        else:
            outcome = Outcome("error", 1)
        reply = await self._reply(msg_id)
        if reply is not None:
            # what the kernel cut, and what it sent that never arrived (PUB drops at its
            # high-water mark when the gateway reads slower than code prints)
            counts = (reply.get("metadata") or {}).get("coderunner") or {}
            dropped = {k: int(v) for k, v in (counts.get("dropped") or {}).items()}
            for name, size in (counts.get("sent") or {}).items():
                if size > received.get(name, size):
                    dropped[name] = dropped.get(name, 0) + size - received[name]
            if output_limit is not None or any(dropped.values()):
                outcome.dropped = dropped
        return outcome

    async def _reply(self, msg_id: str, timeout: float = 5) -> dict[str, Any] | None:
        """The shell reply to ``msg_id``, skipping stale ones."""
        while True:
            try:
                reply = await self.kc.get_shell_msg(timeout=timeout)
            except queue.Empty:
                return None
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply


class BashProcess:
    """A long-lived ``bash`` whose state (cwd, variables, functions) persists.

    Each execution sources a file and then prints a marker with ``$?`` on
    stdout and a marker on stderr, so we know where its output ends. Bash
    cannot be interrupted without ending what it is running, so an interrupt
    or a timeout ends the process; the session then gets a fresh bash.
    """

    language = "bash"

    def __init__(self, proc: asyncio.subprocess.Process, settings: Settings, cell: Any) -> None:
        self.proc = proc
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
        except BaseException:
            jail.close_cell(cell)
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

    async def execute(self, code: str, timeout: float | None, sink: Sink, output_limit: int | None = None) -> Outcome:
        # output_limit: a pipe has backpressure; the Collector's cap suffices
        marker = f"\x1e__coderunner_{secrets.token_hex(8)}__".encode()
        path = self.cell.path(f"cell-{secrets.token_hex(6)}.sh")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(code)
        self.settings.jail.give(self.cell, path)
        m = marker.decode()
        command = (
            f"source {shlex.quote(path)} </dev/null\n"
            f"__cr_rc=$?; printf '%s%d\\n' '{m}' \"$__cr_rc\"; printf '%s\\n' '{m}' >&2\n"
        )
        try:
            self.proc.stdin.write(command.encode())
            await self.proc.stdin.drain()
            out = asyncio.create_task(_read_until(self.proc.stdout, marker, "stdout", sink))
            err = asyncio.create_task(_read_until(self.proc.stderr, marker, "stderr", sink))
            try:
                rc, _ = await asyncio.wait_for(asyncio.gather(out, err), timeout)
            except TimeoutError:
                self._kill()
                o = Outcome.timeout(
                    timeout or 0, "bash was killed; the session got a fresh bash and its state was lost"
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
                "died", 137, "bash had ended; the session got a fresh bash and its state was lost", state_lost=True
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


async def start_backend(language: str, settings: Settings) -> Backend:
    if language == "python":
        return await PythonKernel.start(settings)
    return await BashProcess.start(settings)


class KernelPool:
    """Warm python kernels, so creating a session costs milliseconds.

    Kernels start one at a time in the background (two cores: parallel
    starts only slow each other) until ``target`` are warm. The target grows
    with demand: each take that finds fewer than ``target`` warm raises it by
    one, up to ``max_size``; after ``idle_decay`` seconds without a take it
    steps back down by one (and a surplus warm kernel is shut down) every
    ``idle_decay`` seconds, to ``floor`` (``--pool-size``). While warm
    kernels remain, refilling waits until takes pause for ``refill_quiet``
    seconds: a kernel starting takes the CPU a burst of session creations needs.
    """

    max_size = 8
    idle_decay = 180.0
    refill_quiet = 0.5

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.floor = settings.pool_size
        self.target = self.floor
        self.warm: list[PythonKernel] = []
        self._refill: asyncio.Task | None = None
        self._decay: asyncio.Task | None = None
        self._last_take = 0.0
        self._closed = False

    def status(self) -> dict[str, int]:
        return {
            "warm": len(self.warm),
            "target": self.target,
            "floor": self.floor,
            "max": max(self.floor, self.max_size),
        }

    def start(self) -> None:
        self.refill()
        if self.floor > 0:
            self._decay = asyncio.create_task(self._decay_loop())

    def refill(self) -> None:
        if self._closed or self.target <= 0:
            return
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._fill())

    async def _fill(self) -> None:
        import logging

        log = logging.getLogger("coderunner_gateway")
        loop = asyncio.get_running_loop()
        while self.warm and (quiet := loop.time() - self._last_take) < self.refill_quiet:
            await asyncio.sleep(self.refill_quiet - quiet)
        failures = 0
        while not self._closed and len(self.warm) < self.target and failures < 3:
            try:
                kernel = await PythonKernel.start(self.settings)
            except Exception:
                failures += 1
                log.exception("could not start a warm kernel")
                await asyncio.sleep(1)
                continue
            if self._closed:
                await kernel.shutdown()
                return
            self.warm.append(kernel)

    async def _decay_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(self.idle_decay)
            if self.target > self.floor and loop.time() - self._last_take >= self.idle_decay:
                self.target -= 1
                while len(self.warm) > self.target:
                    await self.warm.pop().shutdown()

    async def take(self) -> PythonKernel:
        self._last_take = asyncio.get_running_loop().time()
        if 0 < self.floor and len(self.warm) < self.target < max(self.floor, self.max_size):
            self.target += 1  # demand outran the pool: keep one more ready
        while self.warm:
            kernel = self.warm.pop(0)
            if await kernel.is_alive():
                self.refill()
                return kernel
            await kernel.shutdown()
        self.refill()
        return await PythonKernel.start(self.settings)

    async def close(self) -> None:
        self._closed = True
        if self._decay is not None:
            self._decay.cancel()
        if self._refill is not None:
            # let an in-flight start finish (it then shuts its kernel down):
            # cancelling mid-spawn could orphan the kernel process
            try:
                await asyncio.wait_for(asyncio.shield(self._refill), 30)
            except BaseException:
                self._refill.cancel()
        warm, self.warm = self.warm, []
        await asyncio.gather(*(k.shutdown() for k in warm), return_exceptions=True)
