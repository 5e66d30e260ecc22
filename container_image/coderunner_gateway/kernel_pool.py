"""Warm python kernels, so that creating a session costs milliseconds."""

from __future__ import annotations

import asyncio
import logging

from .kernels import PythonKernel
from .settings import Settings

log = logging.getLogger("coderunner_gateway")


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
