"""The event stream and the two ways of consuming it.

Runners emit plain dicts (shapes in the README, "The gateway") to a *sink*:

* :class:`StreamSink` hands each event, serialised, to an HTTP response
  through a queue bounded in bytes. For a script, a slow reader slows the
  producer (backpressure through the pipes). A kernel publishes over ZMQ
  PUB/SUB, which cannot be paused: for a session the sink drops the output
  text that does not fit and counts it in the ``done`` event's ``dropped``
  (bytes of ``stdout``/``stderr``), rather than queue without bound.
* :class:`Collector` aggregates for ``Accept: application/json``. It keeps
  at most ``max_bytes`` of output and counts what it dropped, so a flood of
  output cannot exhaust memory and the result says what was lost.

Output is bytes. An output event carries ``text`` when its bytes are UTF-8;
when they are not (:class:`Utf8Chunks`), it carries the exact bytes as
``b64`` and, for clients that only read ``text``, a rendering with U+FFFD.
The aggregated result does the same for the whole stream: ``stdout`` always,
``stdout_b64`` when the output is not UTF-8.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import collections
import json
from typing import Any, Protocol

try:
    import orjson
except ImportError:  # a platform without its wheel: json does the same, slower
    orjson = None  # type: ignore[assignment]

STREAM_QUEUE_BYTES = 4 * 1024 * 1024  # serialised events waiting for a streaming client
TEXT_CHUNK = 256 * 1024  # larger output text is sent as several events


class Sink(Protocol):
    async def emit(self, event: dict[str, Any]) -> None: ...


class Utf8Chunks:
    """Turns one stream's chunks of bytes into output event fields, losing nothing:
    ``{"text"}`` for UTF-8 (a character split across chunks waits for its end),
    ``{"b64", "text"}`` for a chunk that is not."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def feed(self, data: bytes | bytearray, final: bool = False) -> dict[str, str] | None:
        pending = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            self._decoder.reset()
            raw = pending + data
            return {"b64": base64.b64encode(raw).decode("ascii"), "text": raw.decode("utf-8", "replace")}
        return {"text": text} if text else None


def event_bytes(event: dict[str, Any]) -> bytes:
    """The exact bytes of a ``stdout``/``stderr`` event."""
    if "b64" in event:
        return base64.b64decode(event["b64"])
    return event["text"].encode("utf-8", "surrogatepass")


# JSON leaves these raw, but line readers that split like str.splitlines (httpx's
# iter_lines) end a line at them: escaped, one event is always one line. As UTF-8 each
# starts with a lead byte, so these byte strings cannot be part of another character.
_LINE_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def json_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8: orjson's (8x faster than json's on a 10 MB output, which was
    half of the gateway's time answering it), or json's for what orjson refuses (integers
    over 64 bits; lone surrogates, which json escapes as ``\\udXXX``)."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            pass
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def dumps(event: dict[str, Any]) -> bytes:
    """One event as one NDJSON line."""
    data = json_bytes(event)
    for raw, escaped in _LINE_BREAKS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data + b"\n"


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
        if kind in ("stdout", "stderr") and "b64" in event:
            await self._put_output(kind, dumps(event), len(event_bytes(event)))
            return
        if kind in ("stdout", "stderr"):
            text = event["text"]
            # slices, each serialised alone: a huge chunk is never copied whole
            for i in range(0, len(text), TEXT_CHUNK):
                await self._text(kind, text[i : i + TEXT_CHUNK])
            return
        if kind == "done" and any(self.dropped.values()):
            dropped = dict(event.get("dropped") or {})
            for name, size in self.dropped.items():
                dropped[name] = dropped.get(name, 0) + size
            event = {**event, "dropped": dropped}
        await self._put(dumps(event))

    async def _text(self, name: str, text: str) -> None:
        await self._put_output(name, dumps({"type": name, "text": text}), len(text.encode("utf-8", "surrogatepass")))

    async def _put_output(self, name: str, line: bytes, size: int) -> None:
        if self.lossy:
            await asyncio.sleep(0)  # let the reader take what it can first
            if self._size and self._size + len(line) > self.capacity:
                self.dropped[name] += size
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
        self.grown: asyncio.Event | None = None  # set when stdout grows (a streamed answer reads it)
        self.used = 0
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.outputs: list[dict[str, Any]] = []
        self.error: dict[str, Any] | None = None
        self.dropped = {"stdout": 0, "stderr": 0, "outputs": 0}
        self.start: dict[str, Any] = {}
        self.done: dict[str, Any] = {}

    async def emit(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("stdout", "stderr"):
            self._bytes(kind, event_bytes(event))
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

    def take(self, stream: str, data: bytes | bytearray) -> None:
        """A stream's bytes as they came: what :meth:`emit` keeps of its events, without
        the text in between (see ``script_io._Output``)."""
        self._bytes(stream, data)

    def _bytes(self, stream: str, data: bytes | bytearray) -> None:
        room = self.max_bytes - self.used
        size = len(data)
        if size <= room:
            self.used += size
            getattr(self, stream).extend(data)
            if self.grown is not None and stream == "stdout":
                self.grown.set()
            return
        if room > 0:
            # keep the head that fits; cut before a UTF-8 continuation byte (a character boundary)
            cut = room
            while cut > max(0, room - 3) and data[cut] & 0xC0 == 0x80:
                cut -= 1
            getattr(self, stream).extend(data[:cut])
            self.used += cut
            size -= cut
        self.dropped[stream] += size

    def result(self, *, stdout: bool = True) -> dict[str, Any]:
        """The whole answer; without ``stdout`` decoded when it was sent already (a streamed answer)."""
        dropped = dict(self.dropped)
        for stream, size in (self.done.get("dropped") or {}).items():  # what a kernel cut at the source
            dropped[stream] = dropped.get(stream, 0) + size
        truncated = any(dropped.values())
        out: dict[str, Any] = {
            "session_id": self.start.get("session_id"),
            "status": self.done.get("status"),
            "exit_code": self.done.get("exit_code"),
            "execution_time": self.done.get("execution_time"),
            "stdout": "",
            "stderr": "",
            "outputs": self.outputs,
            "error": self.error,
            "truncated": truncated,
        }
        for stream in ("stdout", "stderr") if stdout else ("stderr",):
            data = getattr(self, stream)  # decoded in place: a copy of 10 MB costs ~5 ms
            try:
                out[stream] = data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                out[stream] = data.decode("utf-8", "replace")
                out[f"{stream}_b64"] = base64.b64encode(data).decode("ascii")
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
