"""The pipes of a script's process: its stdin fed, its stdout and stderr read, and the
bootstrap's tagged channel (``programs/script_bootstrap.py``) turned into events."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from typing import Any

from .events import Sink, Utf8Chunks

TAG_STDOUT, TAG_STDERR, TAG_ERROR, TAG_EXIT, TAG_DISPLAY = 1, 2, 3, 4, 5
_STREAMS = {TAG_STDOUT: "stdout", TAG_STDERR: "stderr"}
log = logging.getLogger("coderunner_gateway")


class ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Knows when the process exits: ``Process.wait()`` also waits for every
    pipe to close, which a background grandchild can hold open for ever."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def feed(proc, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        with contextlib.suppress(Exception):
            proc.stdin.close()


class _Output:
    """One stream's bytes on their way to the sink: as they are to a sink that keeps bytes
    (``Collector.take``: 10 MB of output is not decoded to text and encoded back, ~8 ms),
    else as ``stdout``/``stderr`` events of text (:class:`Utf8Chunks`)."""

    def __init__(self, sink: Sink, name: str) -> None:
        self.sink, self.name = sink, name
        self.take = getattr(sink, "take", None)
        self.chunks = Utf8Chunks()

    async def feed(self, data: bytes | bytearray, final: bool = False) -> None:
        if self.take is not None:
            self.take(self.name, data)
        elif fields := self.chunks.feed(data, final):
            await self.sink.emit({"type": self.name, **fields})

    async def feed_pieces(self, pieces: list[Any]) -> None:
        """A run of one stream's pieces (bytes-like), as one event."""
        if self.take is not None:
            for piece in pieces:
                self.take(self.name, piece)
        else:
            await self.feed(b"".join(pieces) if len(pieces) > 1 else bytes(pieces[0]))


async def pump(reader: asyncio.StreamReader, name: str, sink: Sink) -> None:
    out = _Output(sink, name)
    while chunk := await reader.read(65536):
        await out.feed(chunk)
    await out.feed(b"", final=True)


CHANNEL_PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size; the default 64 KiB cost a wake-up per 64 KiB


def channel_pipe() -> tuple[int, int]:
    """The pipe a script's tagged output comes through, as large as an unprivileged
    process may make it: a flood of output costs fewer wake-ups and reads on both ends."""
    r, w = os.pipe()
    with contextlib.suppress(OSError):  # a lower limit (or not Linux): the default size
        fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHANNEL_PIPE_BYTES)
    return r, w


async def pump_channel(fd: int, sink: Sink, errors: list[dict[str, Any]], exits: list[int]) -> None:
    """Read tagged records; merge runs of one stream that arrive together.

    Straight off the pipe, up to its size at a time: a StreamReader would copy every byte
    twice more (into its buffer, and out of it), ~10 ms of page faults for 10 MB here."""
    os.set_blocking(fd, False)
    outputs = {tag: _Output(sink, name) for tag, name in _STREAMS.items()}
    records = Records()
    try:
        while True:
            try:
                chunk = os.read(fd, CHANNEL_PIPE_BYTES)
            except BlockingIOError:
                await _readable(fd)
                continue
            if not chunk:
                break
            for tag, pieces in records.feed(chunk):
                if tag in outputs:
                    await outputs[tag].feed_pieces(pieces)
                else:
                    await _record(tag, pieces[0], sink, errors, exits)
        for out in outputs.values():
            await out.feed(b"", final=True)
    finally:
        os.close(fd)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:  # the loop may see the fd again before this task resumes: once is enough
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


MAX_RECORD_BYTES = 64 << 20  # an error, exit or display record; larger ones are skipped


class Records:
    """The channel's records (a tag byte, a 4-byte big-endian size, the data), read as they
    arrive: output is passed on in the pieces that came (no copy, and a large write is on its
    way before its end is read), consecutive pieces of one stream in one run; other records
    (error, exit, display) are whole, and skipped over :data:`MAX_RECORD_BYTES`."""

    def __init__(self) -> None:
        self._head = bytearray()  # a record's header, when a read ended inside it
        self._tag = -1
        self._left = 0  # the bytes of the current record still to come
        self._whole: bytearray | None = None  # a non-output record being gathered

    def feed(self, chunk: bytes) -> list[tuple[int, list[Any]]]:
        runs: list[tuple[int, list[Any]]] = []
        view, i = memoryview(chunk), 0
        while i < len(view):
            if self._left == 0 and self._whole is None:
                take = 5 - len(self._head)
                self._head += view[i : i + take]
                i += take
                if len(self._head) < 5:
                    break
                self._tag, self._left = self._head[0], int.from_bytes(self._head[1:5], "big")
                self._head.clear()
                if self._tag not in _STREAMS:
                    if self._left > MAX_RECORD_BYTES:
                        log.warning("a script's record of %d bytes was skipped (over %d)", self._left, MAX_RECORD_BYTES)
                    else:
                        self._whole = bytearray()
                if self._left or self._whole is None:
                    continue
            piece = view[i : i + self._left]
            i += len(piece)
            self._left -= len(piece)
            if self._tag in _STREAMS:
                if runs and runs[-1][0] == self._tag:
                    runs[-1][1].append(piece)
                else:
                    runs.append((self._tag, [piece]))
            elif self._whole is not None:
                self._whole += piece
                if self._left == 0:
                    runs.append((self._tag, [self._whole]))
                    self._whole = None
        return runs


async def _record(tag: int, data: bytearray, sink: Sink, errors: list[dict[str, Any]], exits: list[int]) -> None:
    """A record other than output: an uncaught exception, the exit code, or a display."""
    if tag == TAG_ERROR:
        with contextlib.suppress(ValueError):
            errors.append(json.loads(data))
    elif tag == TAG_EXIT:
        with contextlib.suppress(ValueError):
            exits.append(int(data))
    elif tag == TAG_DISPLAY:
        with contextlib.suppress(ValueError):
            shown = json.loads(data)
            if isinstance(shown, dict) and isinstance(shown.get("data"), dict):
                await sink.emit(
                    {
                        "type": "display",
                        "data": shown["data"],
                        **({"metadata": shown["metadata"]} if shown.get("metadata") else {}),
                    }
                )
