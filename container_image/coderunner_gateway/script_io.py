"""The pipes of a script's process: its stdin fed, its stdout and stderr read, and the
bootstrap's tagged channel (``programs/script_bootstrap.py``) turned into events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

from .events import Sink, Utf8Chunks

TAG_STDOUT, TAG_STDERR, TAG_ERROR, TAG_EXIT, TAG_DISPLAY = 1, 2, 3, 4, 5
_STREAMS = {TAG_STDOUT: "stdout", TAG_STDERR: "stderr"}


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


async def pump(reader: asyncio.StreamReader, name: str, sink: Sink) -> None:
    chunks = Utf8Chunks()
    while chunk := await reader.read(65536):
        if fields := chunks.feed(chunk):
            await sink.emit({"type": name, **fields})
    if fields := chunks.feed(b"", final=True):
        await sink.emit({"type": name, **fields})


async def pump_channel(fd: int, sink: Sink, errors: list[dict[str, Any]], exits: list[int]) -> None:
    """Read tagged records; merge runs of one stream that arrive together."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    decoders = {TAG_STDOUT: Utf8Chunks(), TAG_STDERR: Utf8Chunks()}
    buf = bytearray()
    try:
        while chunk := await reader.read(1 << 16):
            buf += chunk
            for tag, data in _take_runs(buf):
                if tag in decoders:
                    if fields := decoders[tag].feed(bytes(data)):
                        await sink.emit({"type": _STREAMS[tag], **fields})
                else:
                    await _record(tag, data, sink, errors, exits)
        for tag, chunks in decoders.items():
            if fields := chunks.feed(b"", final=True):
                await sink.emit({"type": _STREAMS[tag], **fields})
    finally:
        transport.close()


def _take_runs(buf: bytearray) -> list[tuple[int, bytearray]]:
    """The whole records at the start of ``buf`` (removed from it), consecutive records of one
    stream merged into one run."""
    runs: list[tuple[int, bytearray]] = []
    pos = 0
    while len(buf) - pos >= 5:
        size = int.from_bytes(buf[pos + 1 : pos + 5], "big")
        if len(buf) - pos - 5 < size:
            break
        tag, data = buf[pos], buf[pos + 5 : pos + 5 + size]
        pos += 5 + size
        if runs and runs[-1][0] == tag and tag in _STREAMS:
            runs[-1][1].extend(data)
        else:
            runs.append((tag, bytearray(data)))
    del buf[:pos]
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
