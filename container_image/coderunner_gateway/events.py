"""The event stream and the two ways of consuming it.

Runners emit plain dicts (shapes in ARCHITECTURE.md) to a *sink*:

* :class:`StreamSink` hands each event, serialised, to an HTTP response
  through a queue bounded in bytes. For a script, a slow reader slows the
  producer (backpressure through the pipes). A kernel publishes over ZMQ
  PUB/SUB, which cannot be paused: for a session the sink drops the output
  text that does not fit and counts it in the ``done`` event's ``dropped``
  (bytes of ``stdout``/``stderr``), rather than queue without bound.
* :class:`Collector` aggregates for ``Accept: application/json``. It keeps
  at most ``max_bytes`` of output and counts what it dropped, so a flood of
  output cannot exhaust memory and the result says what was lost.
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any, Protocol

STREAM_QUEUE_BYTES = 4 * 1024 * 1024  # serialised events waiting for a streaming client
TEXT_CHUNK = 256 * 1024               # larger output text is sent as several events


class Sink(Protocol):
    async def emit(self, event: dict[str, Any]) -> None: ...


def dumps(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class StreamSink:
    def __init__(self, capacity: int = STREAM_QUEUE_BYTES, *, lossy: bool = False) -> None:
        self.capacity = capacity
        self.lossy = lossy
        self.dropped = {"stdout": 0, "stderr": 0}
        self._items: collections.deque[bytes | None] = collections.deque()
        self._size = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    async def emit(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("stdout", "stderr"):
            text = event["text"]
            # slices, each serialised alone: a huge chunk is never copied whole
            for i in range(0, len(text), TEXT_CHUNK):
                await self._text(kind, text[i:i + TEXT_CHUNK])
            return
        if kind == "done" and any(self.dropped.values()):
            dropped = dict(event.get("dropped") or {})
            for name, size in self.dropped.items():
                dropped[name] = dropped.get(name, 0) + size
            event = {**event, "dropped": dropped}
        await self._put(dumps(event))

    async def _text(self, name: str, text: str) -> None:
        line = dumps({"type": name, "text": text})
        if self.lossy:
            await asyncio.sleep(0)  # let the reader take what it can first
            if self._size and self._size + len(line) > self.capacity:
                self.dropped[name] += len(text.encode("utf-8", "surrogatepass"))
                return
        await self._put(line)

    async def _put(self, line: bytes) -> None:
        while self._size and self._size + len(line) > self.capacity:
            self._writable.clear()
            await self._writable.wait()
        self._items.append(line)
        self._size += len(line)
        self._readable.set()

    async def get(self) -> bytes | None:
        """The next serialised event; ``None`` once closed."""
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        line = self._items.popleft()
        if line is not None:
            self._size -= len(line)
            self._writable.set()
        return line

    async def close(self) -> None:
        self._items.append(None)
        self._readable.set()


class Collector:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.outputs: list[dict[str, Any]] = []
        self.error: dict[str, Any] | None = None
        self.dropped = {"stdout": 0, "stderr": 0, "outputs": 0}
        self.start: dict[str, Any] = {}
        self.done: dict[str, Any] = {}

    async def emit(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("stdout", "stderr"):
            self._text(kind, event["text"])
        elif kind in ("display", "result"):
            size = sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in event["data"].values())
            if self.used + size > self.max_bytes:
                self.dropped["outputs"] += 1
            else:
                self.used += size
                self.outputs.append(event)
        elif kind == "error":
            self.error = {k: event[k] for k in ("ename", "evalue", "traceback")}
        elif kind == "start":
            self.start = event
        elif kind == "done":
            self.done = event

    def _text(self, stream: str, text: str) -> None:
        room = self.max_bytes - self.used
        size = len(text.encode("utf-8", "surrogatepass"))
        if size <= room:
            self.used += size
            getattr(self, stream).append(text)
            return
        if room > 0:
            # keep the head that fits; cut on a character boundary
            head = text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
            kept = len(head.encode("utf-8", "surrogatepass"))
            getattr(self, stream).append(head)
            self.used += kept
            size -= kept
        self.dropped[stream] += size

    def result(self) -> dict[str, Any]:
        dropped = dict(self.dropped)
        for stream, size in (self.done.get("dropped") or {}).items():  # what a kernel cut at the source
            dropped[stream] = dropped.get(stream, 0) + size
        truncated = any(dropped.values())
        out: dict[str, Any] = {
            "session_id": self.start.get("session_id"),
            "status": self.done.get("status"),
            "exit_code": self.done.get("exit_code"),
            "execution_time": self.done.get("execution_time"),
            "stdout": "".join(self.stdout),
            "stderr": "".join(self.stderr),
            "outputs": self.outputs,
            "error": self.error,
            "truncated": truncated,
        }
        messages = []
        if truncated:
            out["dropped"] = dict(dropped)
            messages.append(
                f"output exceeded the gateway's limit of {self.max_bytes} bytes; "
                f"dropped {dropped['stdout']} bytes of stdout, {dropped['stderr']} of stderr "
                f"and {dropped['outputs']} rich outputs (stream with Accept: application/x-ndjson to get everything)"
            )
        if self.done.get("message"):
            messages.append(self.done["message"])
        if messages:
            out["message"] = "; ".join(messages)
        for key in ("state_lost", "signal"):
            if key in self.done:
                out[key] = self.done[key]
        return out
