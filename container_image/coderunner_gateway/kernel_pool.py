"""Warm python kernels, so that creating a session never waits for one.

:class:`KernelPool` keeps fresh kernels started ahead (each in a cell of its own) and grows
with demand; a session holds its kernel through a :class:`~.lazy_kernel.LazyKernel`, taken
from the pool when one is warm, else bound when the kernel started for it is ready.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from typing import Any

from .errors import process_limit
from .kernels import PythonKernel
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
