"""A session's python backend: a Jupyter kernel in a cell of its own.

Driven with jupyter_client's async API over IPC sockets in the cell's private dir; no
Jupyter Server. Every new kernel first runs ``programs/kernel_init.py`` (ordered stdout and
stderr, the output cap of aggregated requests, what PUB/SUB dropped) and
``programs/kernel_init_after.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from . import programs, wire
from .events import Sink
from .outcome import EXIT_DIED, EXIT_INTERRUPTED, Outcome, system_exit_code, system_exit_prints
from .request import ExecuteRequest
from .settings import Settings

log = logging.getLogger("coderunner_gateway")

KERNEL_LAUNCH = programs.load("kernel_launch.py")
KERNEL_INIT = programs.load("kernel_init.py")
# A second cell: the first one's own output tee put a bound ``write`` on
# each stream when it ended, shadowing the subclass; with the tee off now,
# removing it sticks.
KERNEL_INIT_AFTER = programs.load("kernel_init_after.py")


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
        jail = settings.jail
        cell = jail.open_cell("kernel")
        try:
            km = await cls._launch(settings, cell)
        except BaseException:
            jail.close_cell(cell)
            raise
        kc = km.client(context=km.context)
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            kernel = cls(km, kc, cell, settings)
            await kernel._run_silent(KERNEL_INIT)
            await kernel._run_silent(KERNEL_INIT_AFTER)
        except BaseException:
            _close_channels(kc)
            await km.shutdown_kernel(now=True)
            jail.close_cell(cell)
            raise
        return kernel

    @staticmethod
    async def _launch(settings: Settings, cell: Any) -> Any:
        """Start the kernel process in ``cell``; its (async) kernel manager."""
        import zmq.asyncio
        from jupyter_client import AsyncKernelManager
        from jupyter_client.provisioning import LocalProvisioner

        jail = settings.jail
        # one ZeroMQ context (one I/O thread, started with the first kernel) for every kernel and
        # client: a context of their own each would start a thread per kernel, and ZeroMQ aborts
        # the whole gateway when it cannot (the sandbox's process limit reached)
        km = AsyncKernelManager(
            context=zmq.asyncio.Context.instance(),
            kernel_name="python3",
            transport="ipc",
            ip=cell.path("k"),
            connection_file=cell.path("kernel.json"),
        )
        # the kernel runs our Python, whatever kernelspecs the machine has, inside its cell;
        # it interrupts itself on a control message (a signal would reach only the cell's bwrap)
        spec = km.kernel_spec
        if spec is None:
            raise RuntimeError("no python3 kernelspec: the gateway's Python needs ipykernel")
        # IPython's history stays in memory (In, Out, %history work): its SQLite file cost
        # ~1.5 ms of the kernel's CPU per execution and kept every cell's code on disk
        argv = [settings.python, "-c", KERNEL_LAUNCH, "-f", "{connection_file}", "--HistoryManager.enabled=False"]
        spec.argv = jail.command(cell, argv)
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
        cell.pid = km.provisioner.pid if isinstance(km.provisioner, LocalProvisioner) else None
        return km

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
            _close_channels(self.kc)
        with contextlib.suppress(Exception):
            await self.km.shutdown_kernel(now=True)
        with contextlib.suppress(Exception):
            await self.km._async_cleanup_resources()
        self.settings.jail.close_cell(self.cell)

    async def execute(self, req: ExecuteRequest, sink: Sink, output_limit: int | None = None) -> Outcome:
        loop = asyncio.get_running_loop()
        run = _Execution(self._send_request(req.code, output_limit), req.timeout)
        deadline = loop.time() + req.timeout if req.timeout else None
        while True:
            now = loop.time()
            if deadline is not None and run.interrupted_at is None and now >= deadline:
                run.interrupted_at = now
                await self.interrupt()
            if run.interrupted_at is not None and now - run.interrupted_at > self.INTERRUPT_GRACE:
                o = Outcome.timeout(
                    req.timeout or 0, "the kernel ignored the interrupt and was replaced; the session's state was lost"
                )
                o.state_lost = True
                return o
            wait = 0.25 if deadline is None or run.interrupted_at is not None else max(0.0, min(0.25, deadline - now))
            try:
                msg = await wire.recv(self.kc.iopub_channel.socket, self.kc.session, wait)
            except wire.BadMessage as e:  # the kernel is the code's process: it can send anything
                log.warning("a kernel message was ignored: %s", e)
                continue
            if msg is None:
                if not await self.is_alive():
                    return Outcome(
                        "died",
                        EXIT_DIED,
                        "the kernel died; the session was given a fresh kernel and its state was lost",
                        state_lost=True,
                    )
                continue
            if msg["parent_header"].get("msg_id") == run.msg_id and await run.forward(msg, sink):
                break
        outcome = run.outcome()
        reply = await self._reply(run.msg_id)
        if reply is not None:
            run.count_dropped(reply, outcome, output_limit)
        return outcome

    def _send_request(self, code: str, output_limit: int | None) -> str:
        """Send an execute_request; its msg_id."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "allow_stdin": False,
            "stop_on_error": False,
            "user_expressions": {},
        }
        metadata = {} if output_limit is None else {"coderunner_output_limit": output_limit}
        return wire.send(self.kc.shell_channel.socket, self.kc.session, "execute_request", content, metadata)

    async def _reply(self, msg_id: str, timeout: float = 5) -> dict[str, Any] | None:
        """The shell reply to ``msg_id``, skipping stale ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reply = await wire.recv(self.kc.shell_channel.socket, self.kc.session, max(0.0, deadline - loop.time()))
            except wire.BadMessage as e:
                log.warning("a kernel message was ignored: %s", e)
                continue
            if reply is None:
                return None
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply


class _Execution:
    """What one execution's messages said so far: output counted, its error, its interrupt."""

    def __init__(self, msg_id: str, timeout: float | None) -> None:
        self.msg_id = msg_id
        self.timeout = timeout
        self.received = {"stdout": 0, "stderr": 0}
        self.error: dict[str, Any] | None = None
        self.interrupted_at: float | None = None

    async def forward(self, msg: dict[str, Any], sink: Sink) -> bool:
        """Turn one of the kernel's iopub messages into events; True when it went idle."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status":
            return bool(content.get("execution_state") == "idle")
        if kind == "stream":
            if content["name"] in self.received:
                self.received[content["name"]] += len(content["text"].encode("utf-8", "surrogatepass"))
            await sink.emit({"type": content["name"], "text": content["text"]})
        elif kind in ("display_data", "update_display_data"):
            ev = {"type": "display", "data": content.get("data", {})}
            if content.get("metadata"):
                ev["metadata"] = content["metadata"]
            await sink.emit(ev)
        elif kind == "execute_result":
            ev = {"type": "result", "data": content.get("data", {}), "execution_count": content.get("execution_count")}
            await sink.emit(ev)
        elif kind == "error":
            await self._error(content, sink)
        return False

    async def _error(self, content: dict[str, Any], sink: Sink) -> None:
        error = self.error = {
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
        if error["ename"] == "SystemExit" and system_exit_prints(error["evalue"]):
            # python prints a non-integer exit code (sys.exit("msg")) on stderr
            await sink.emit({"type": "stderr", "text": error["evalue"] + "\n"})
        if error["ename"] == "SystemExit" or (
            self.interrupted_at is not None and error["ename"] == "KeyboardInterrupt"
        ):
            return
        await sink.emit({"type": "error", **error})

    def outcome(self) -> Outcome:
        error = self.error
        if self.interrupted_at is not None:
            return Outcome.timeout(self.timeout or 0, "the kernel was interrupted; the session keeps its state")
        if error is None:
            return Outcome("ok", 0)
        if error["ename"] == "SystemExit":
            return Outcome.from_exit(system_exit_code(error["evalue"]))
        if error["ename"] == "KeyboardInterrupt":
            return Outcome("interrupted", EXIT_INTERRUPTED)
        return Outcome("error", 1)

    def count_dropped(self, reply: dict[str, Any], outcome: Outcome, output_limit: int | None) -> None:
        """What the kernel cut, and what it sent that never arrived (PUB drops at its
        high-water mark when the gateway reads slower than code prints)."""
        counts = (reply.get("metadata") or {}).get("coderunner") or {}
        dropped = {k: int(v) for k, v in (counts.get("dropped") or {}).items()}
        for name, size in (counts.get("sent") or {}).items():
            if size > self.received.get(name, size):
                dropped[name] = dropped.get(name, 0) + size - self.received[name]
        if output_limit is not None or any(dropped.values()):
            outcome.dropped = dropped


def _close_channels(kc: Any) -> None:
    """Stop a kernel client's channels, and the readers ``wire`` keeps on their sockets first."""
    for channel in (kc.shell_channel, kc.iopub_channel):
        if channel.socket is not None:
            wire.forget(channel.socket)
    kc.stop_channels()
