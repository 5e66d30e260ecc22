"""The event stream and the two ways of consuming it.

Runners emit plain dicts (shapes in ARCHITECTURE.md) to a *sink*:

* :class:`StreamSink` hands each event, serialised, to an HTTP response
  through a bounded queue, so a slow reader slows the producer instead of
  growing memory (backpressure).
* :class:`Collector` aggregates for ``Accept: application/json``. It keeps
  at most ``max_bytes`` of output and counts what it dropped, so a flood of
  output cannot exhaust memory and the result says what was lost.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol


class Sink(Protocol):
    async def emit(self, event: dict[str, Any]) -> None: ...


def dumps(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class StreamSink:
    def __init__(self, maxsize: int = 64) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=maxsize)

    async def emit(self, event: dict[str, Any]) -> None:
        await self.queue.put(dumps(event))

    async def close(self) -> None:
        await self.queue.put(None)


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
