"""A python session's backend: the session's own kernel, bound when it is ready.

The kernel comes from :class:`~.kernel_pool.KernelPool`: a warm one at once, else the one
started for this session, so ``POST /v1/sessions`` returns at once either way and the
session's first execution waits for its kernel instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .events import Sink
from .kernels import PythonKernel
from .outcome import EXIT_DIED, EXIT_INTERRUPTED, Outcome
from .request import ExecuteRequest

if TYPE_CHECKING:
    from .kernel_pool import KernelPool

log = logging.getLogger("coderunner_gateway")


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
