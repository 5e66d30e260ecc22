"""glibc's malloc, set for an output of megabytes: served from the heap, and given back when idle.

By default glibc serves every block over 128 KiB (up to a threshold it raises as it goes)
with a fresh ``mmap`` and unmaps it when freed, so each large buffer an answer needs (the
output as text, its JSON) faults in every one of its pages again. In a VM (the sandbox
always is one on a Mac) a page fault is dear: on our 2-core test VM, decoding 10 MB took
10 ms from fresh pages and 2 ms from reused ones. So blocks up to 32 MiB come from the heap,
and the heap keeps up to 64 MiB free at its top; what is free is returned to the system
(``malloc_trim``) once the gateway has had no large answer for a few seconds, so an idle
gateway does not hold the memory of its last large output.

Not glibc (musl, macOS): nothing is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from typing import Any

log = logging.getLogger("coderunner_gateway")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest for the heap (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 64 << 20
LARGE = 1 << 20  # an answer this large schedules a trim
TRIM_AFTER = 3.0  # seconds without a large answer


def _glibc() -> Any:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        if libc.mallopt and libc.malloc_trim:
            return libc
    return None


class Heap:
    def __init__(self) -> None:
        self._libc = _glibc()
        self._trim: asyncio.TimerHandle | None = None
        self.trims = 0

    def tune(self) -> bool:
        """Serve large blocks from the heap; True when this is glibc and it took the settings."""
        if self._libc is None:
            return False
        return bool(self._libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            self._libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )

    def used(self, size: int) -> None:
        """An answer of ``size`` bytes was made: give the heap back once large ones stop."""
        if self._libc is None or size < LARGE:
            return
        if self._trim is not None:
            self._trim.cancel()
        self._trim = asyncio.get_running_loop().call_later(TRIM_AFTER, self.trim)

    def trim(self) -> None:
        self._trim = None
        if self._libc is not None:
            self._libc.malloc_trim(0)
            self.trims += 1


heap = Heap()
