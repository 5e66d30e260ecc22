"""Warm python kernels, so that creating a session never waits for one.

Two halves. :class:`KernelPool` keeps fresh kernels started ahead (each in a cell of its own)
and grows with demand. :class:`LazyKernel` is a python session's backend: it holds the
session's kernel, taken from the pool when one is warm, else bound when the kernel started
for it is ready, so ``POST /v1/sessions`` returns at once either way and the session's first
execution waits for its kernel instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from typing import Any

from .errors import process_limit
from .events import Sink
from .kernels import PythonKernel
from .outcome import EXIT_DIED, EXIT_INTERRUPTED, Outcome
from .request import ExecuteRequest
from .settings import MiB, Settings

log = logging.getLogger("coderunner_gateway")

KERNEL_BUDGET = 100 * MiB  # what one warm kernel in its cell may cost, to size --pool-max's default


def _memory_bytes() -> int | None:
    """The memory this gateway may use: its cgroup's limit when it has one, else the machine's."""
    with contextlib.suppress(OSError, ValueError):
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit != "max":
            return int(limit)
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as f:
            line = next(x for x in f if x.startswith("MemTotal:"))
        return int(line.split()[1]) * 1024
    return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_pool_max(floor: int) -> int:
    """``--pool-max``'s default: 4 kernels a core, at most an eighth of the memory in warm
    kernels (100 MiB each), at most 16; never below ``floor``; 0 (no pool) when ``floor`` is 0."""
    if floor <= 0:
        return 0
    cap = min(16, 4 * cpu_count())
    memory = _memory_bytes()
    if memory is not None:
        cap = min(cap, memory // (8 * KERNEL_BUDGET))
    return max(floor, cap)


class KernelStartFailed(RuntimeError):
    """A kernel started for a session could not start."""


class KernelPool:
    """Fresh python kernels started ahead, each in a cell of its own, handed out once.

    ``claim()`` returns a future of a kernel at once: resolved when a warm kernel was there,
    else resolved by the next kernel that finishes starting (claims are served in order).
    A kernel goes to one claim only and is never taken back: isolation needs nothing more.

    Starts owed to claims run in parallel, at most ``parallel`` at a time (the cores: a kernel
    start is about a second of CPU), and never wait. Starts that only refill the pool are
    background work: one at a time, each once no session execution has run for
    ``refill_quiet`` seconds (code that runs needs the CPU more than the next session does),
    but not later than ``refill_defer`` seconds after it was wanted.

    The pool refills to ``target``, which starts at ``floor`` (``--pool-size``). A claim that
    finds the pool dry doubles the target, up to ``max_size`` (``--pool-max``); after ``idle``
    seconds without a claim (``--pool-idle``) it halves, down to the floor, and warm kernels
    beyond it are shut down; again every ``idle`` seconds. With ``--pool-size 0`` the default
    ``max_size`` is 0: no pool at all, every session starts its own kernel.
    """

    refill_quiet = 0.5
    refill_defer = 10.0
    retry_after = 2.0  # after a refill start failed; doubles with each failure in a row, up to a minute

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.floor = settings.pool_size
        self.max_size = max(self.floor, settings.pool_max if settings.pool_max is not None else 0)
        self.idle = settings.pool_idle
        self.parallel = max(1, min(4, cpu_count()))
        self.target = self.floor
        self.warm: list[PythonKernel] = []
        self.waiters: collections.deque[asyncio.Future[PythonKernel]] = collections.deque()
        self.active = 0  # session executions running now
        self._starts: set[asyncio.Task[None]] = set()
        self._others: set[asyncio.Task[Any]] = set()  # kernels shutting down
        self._decay: asyncio.Task[None] | None = None
        self._recheck: asyncio.TimerHandle | None = None
        self._last_take = float("-inf")
        self._last_active = float("-inf")
        self._last_shrink = 0.0
        self._wanted_since: float | None = None  # since when a refill start waits for quiet
        self._failures = 0
        self._retry_at = 0.0
        self._closed = False

    # -- what /health shows -------------------------------------------------
    def status(self) -> dict[str, int]:
        return {
            "warm": len(self.warm),
            "starting": len(self._starts),
            "waiting": self._waiting(),
            "target": self.target,
            "floor": self.floor,
            "max": self.max_size,
        }

    def _waiting(self) -> int:
        return sum(1 for f in self.waiters if not f.done())

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_shrink = loop.time()
        self._pump()
        if self.max_size > 0:
            self._decay = asyncio.create_task(self._decay_loop())

    async def close(self) -> None:
        self._closed = True
        if self._decay is not None:
            self._decay.cancel()
        if self._recheck is not None:
            self._recheck.cancel()
        for f in self.waiters:
            if not f.done():
                f.set_exception(KernelStartFailed("the gateway is shutting down"))
                f.exception()  # retrieved: its session is going too
        self.waiters.clear()
        if self._starts:
            # let in-flight starts finish (their kernels are then shut down):
            # cancelling mid-spawn could orphan the kernel process
            starts = list(self._starts)
            _, pending = await asyncio.wait(starts, timeout=30)
            for t in pending:
                t.cancel()
        warm, self.warm = self.warm, []
        await asyncio.gather(*(k.shutdown() for k in warm), *self._others, return_exceptions=True)

    # -- demand -------------------------------------------------------------
    def executing(self, running: bool) -> None:
        """A session execution began (True) or ended (False): refills wait for quiet."""
        self.active += 1 if running else -1
        self._last_active = asyncio.get_running_loop().time()

    async def claim(self) -> asyncio.Future[PythonKernel]:
        """A future of a fresh kernel for one session: already resolved when one was warm."""
        loop = asyncio.get_running_loop()
        self._last_take = loop.time()
        fut: asyncio.Future[PythonKernel] = loop.create_future()
        if self._closed:
            fut.set_exception(KernelStartFailed("the gateway is shutting down"))
            return fut
        while self.warm:
            kernel = self.warm.pop(0)
            if await kernel.is_alive():
                fut.set_result(kernel)
                self._pump()
                return fut
            self._shutdown(kernel)
        if self.max_size > 0:
            self.target = min(self.max_size, max(1, self.target) * 2)  # demand outran the pool
        self.waiters.append(fut)
        self._pump()
        return fut

    # -- starting kernels ---------------------------------------------------
    def _pump(self) -> None:
        """Start what is owed to claims, ``parallel`` at a time; then refill the pool, one at a time."""
        if self._closed:
            return
        while self.waiters and self.waiters[0].done():
            self.waiters.popleft()  # claims given up (their session went)
        owed = self._waiting()
        wanted = owed + max(0, self.target - len(self.warm))
        deferred = False
        while len(self._starts) < min(self.parallel, wanted):
            if len(self._starts) >= owed:  # this one would only refill the pool: background work
                if len(self._starts) > owed:
                    break  # one refill at a time: the cores stay with the code that runs
                if not self._may_refill():
                    deferred = True
                    break
            task = asyncio.create_task(self._start_one())
            self._starts.add(task)
        if deferred and self._recheck is None:
            self._recheck = asyncio.get_running_loop().call_later(0.1, self._pump_later)
        if len(self._starts) >= wanted:
            self._wanted_since = None

    def _pump_later(self) -> None:
        self._recheck = None
        self._pump()

    def _may_refill(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            return False
        if self._wanted_since is None:
            self._wanted_since = now
        quiet = self.active == 0 and now - max(self._last_active, self._last_take) >= self.refill_quiet
        if quiet or now - self._wanted_since >= self.refill_defer:
            self._wanted_since = None
            return True
        return False

    async def _start_one(self) -> None:
        task = asyncio.current_task()
        try:
            kernel = await PythonKernel.start(self.settings)
        except Exception as exc:
            if limit := process_limit(exc):  # a known condition: one line, in the user's terms
                log.warning("could not start a python kernel: %s", limit.message)
            else:
                log.exception("could not start a python kernel")
            self._failures += 1
            waiter = self._next_waiter()
            if waiter is not None:
                waiter.set_exception(KernelStartFailed(limit.message if limit else f"{type(exc).__name__}: {exc}"))
            else:
                delay = min(60.0, self.retry_after * 2 ** (self._failures - 1))
                self._retry_at = asyncio.get_running_loop().time() + delay
        else:
            self._failures = 0
            self._retry_at = 0.0
            self._deliver(kernel)
        finally:
            if task is not None:
                self._starts.discard(task)
            self._pump()

    def _next_waiter(self) -> asyncio.Future[PythonKernel] | None:
        while self.waiters:
            f = self.waiters.popleft()
            if not f.done():
                return f
        return None

    def _deliver(self, kernel: PythonKernel) -> None:
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(kernel)
        elif self._closed or len(self.warm) >= self.max_size:
            self._shutdown(kernel)
        else:
            self.warm.append(kernel)  # fresh, never handed out: warm even if its claim went

    def _shutdown(self, kernel: PythonKernel) -> None:
        task = asyncio.create_task(kernel.shutdown())
        self._others.add(task)
        task.add_done_callback(self._others.discard)

    # -- shrinking ----------------------------------------------------------
    async def _decay_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            since = max(self._last_take, self._last_shrink)
            wait = since + self.idle - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._last_shrink = loop.time()
            self.target = max(self.floor, self.target // 2)
            surplus, self.warm = self.warm[self.target :], self.warm[: self.target]
            if surplus:
                log.info("kernel pool idle for %gs: %d warm kernels shut down", self.idle, len(surplus))
            for kernel in surplus:
                self._shutdown(kernel)


class LazyKernel:
    """A python session's backend: its own kernel, bound when that kernel is ready.

    ``state`` is ``ready``, ``starting`` (the first execution waits for it) or ``failed``
    (the kernel started for it could not start: the execution that waited says why, and the
    next one claims a new kernel). Deleting or restarting the session gives up the claim; a
    kernel still starting for it then goes to the next claim or the pool, as it never ran code.
    """

    language = "python"

    def __init__(self, pool: KernelPool, claim: asyncio.Future[PythonKernel]) -> None:
        self.pool = pool
        self.kernel: PythonKernel | None = None
        self.error: str | None = None
        self._claim: asyncio.Future[PythonKernel] | None = None
        self._interrupted = asyncio.Event()
        self._closed = False
        self._watch(claim)

    @property
    def state(self) -> str:
        if self.kernel is not None:
            return "ready"
        return "failed" if self.error is not None else "starting"

    def _watch(self, claim: asyncio.Future[PythonKernel]) -> None:
        self._claim, self.error = claim, None
        if claim.done():
            self._settle(claim)
        else:
            claim.add_done_callback(self._settle)

    def _settle(self, claim: asyncio.Future[PythonKernel]) -> None:
        if claim is not self._claim or claim.cancelled():
            return
        exc = claim.exception()
        if exc is not None:
            self.error = str(exc)
            self._claim = None
        else:
            self.kernel = claim.result()

    async def _bind(self) -> PythonKernel | Outcome:
        """The session's kernel, waited for; an Outcome when there is none to run code in."""
        if self.kernel is None and not self._closed and self._claim is None:
            self._watch(await self.pool.claim())  # the last start failed: try a new kernel
        claim = self._claim
        if self.kernel is None and claim is not None and not claim.done():
            self._interrupted.clear()
            interrupted: asyncio.Future[Any] = asyncio.ensure_future(self._interrupted.wait())
            either: list[asyncio.Future[Any]] = [claim, interrupted]
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                interrupted.cancel()
            if not claim.done():
                return Outcome(
                    "interrupted", EXIT_INTERRUPTED, "interrupted while the session's kernel was starting: nothing ran"
                )
            self._settle(claim)
        if self._closed:
            return Outcome("died", EXIT_DIED, "the session was deleted or restarted before its kernel was ready")
        if self.kernel is None:
            return Outcome(
                "died",
                EXIT_DIED,
                f"the session's kernel could not start ({self.error}); nothing ran. "
                "The next execution on this session starts a new kernel; the gateway log says more",
            )
        return self.kernel

    async def execute(self, req: ExecuteRequest, sink: Sink, output_limit: int | None = None) -> Outcome:
        kernel = self.kernel if self.kernel is not None else await self._bind()
        if isinstance(kernel, Outcome):
            return kernel
        return await kernel.execute(req, sink, output_limit)

    async def interrupt(self) -> None:
        if self.kernel is not None:
            await self.kernel.interrupt()
        else:
            self._interrupted.set()  # an execution waiting for the kernel ends, having run nothing

    async def is_alive(self) -> bool:
        if self.kernel is not None:
            return await self.kernel.is_alive()
        return not self._closed  # starting, or failed to start: nothing was lost

    async def shutdown(self) -> None:
        self._closed = True
        claim = self._claim
        if claim is not None:
            if claim.done():
                self._settle(claim)  # resolved, its callback not run yet: the kernel is ours
            else:
                claim.cancel()  # its kernel, when ready, goes to the next claim or the pool
        self._claim = None
        if self.kernel is not None:
            await self.kernel.shutdown()
