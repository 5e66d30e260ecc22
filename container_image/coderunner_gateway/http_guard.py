"""The HTTP protocol the gateway serves with: uvicorn's, plus what it lacks against clients that
have not authenticated yet (header size and time limits, a connection cap)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024  # a request's line and headers; more is answered 431 before auth


def guarded_protocol(header_timeout: float, max_connections: int) -> type:
    """uvicorn's httptools protocol with what it lacks against unauthenticated clients: a
    deadline for a request's headers (also for a keep-alive connection's next request, and for
    the rest of a body we already answered), a cap on open connections, and a 431 for headers
    over :data:`MAX_HEADER_BYTES` before they are buffered."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (a C parser: about half the CPU of its h11 one per request)
    with the guards :func:`guarded_protocol` describes; its limits are set by that factory on
    a subclass.

    A request's head is counted as it arrives, up to its blank line, before the parser (which
    buffers a header until it is whole) sees it. The bytes of a next pipelined request that
    share a read with the end of a body are not counted: at most one read (256 KiB) more."""

    header_timeout: float = 10.0
    max_connections: int = 256
    _head_timer: asyncio.TimerHandle | None = None
    _refused = False
    _in_body = False  # between a head's blank line and its message's end
    _head = 0  # bytes of the head that is arriving
    _tail = b""  # the last bytes read before, to find a blank line split across reads

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(
                503,
                "too_many_connections",
                f"the gateway has {self.max_connections} open connections (its --max-connections)",
                linger=False,
            )
            return
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._discarded += len(data)
            if self._discarded > 1 << 20:
                self.transport.close()
            return
        if not self._in_body:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            self._head += len(data) if end == -1 else end + 4 - len(self._tail)
            if self._head > MAX_HEADER_BYTES:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"the request's headers are over the gateway's limit of {MAX_HEADER_BYTES} bytes",
                )
                return
            self._tail = seen[-3:]
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_body, self._head, self._tail = True, 0, b""
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline:
            self._watch_head()

    def _watch_head(self) -> None:
        """Arm the deadline: we wait for their next request (or for the rest of one we answered)."""
        if self._refused or self.transport.is_closing():
            return self._cancel_head_timer()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._in_body and self._head:
            self._refuse(408, "request_timeout", f"the request was not sent within {self.header_timeout:g}s")
        else:  # nothing sent on a keep-alive connection, or the rest of a body we answered
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str, *, linger: bool = True) -> None:
        """Answer once, stop reading into memory, and hang up (after draining a little of
        what the client still sends, so it can read the answer instead of a reset)."""
        self._refused = True
        self._discarded = 0
        self._cancel_head_timer()
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        if not linger:
            self.transport.close()
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(1.0, self.transport.close)
