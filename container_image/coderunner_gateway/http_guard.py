"""The HTTP protocol the gateway serves with: uvicorn's, plus what it lacks against clients that
have not authenticated yet (header size and time limits, a connection cap)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEADER_BYTES = 64 * 1024  # a request's line and headers; more is answered 431 before auth


def guarded_protocol(header_timeout: float, max_connections: int) -> type:
    """uvicorn's h11 protocol with what it lacks against unauthenticated clients: a deadline
    for a request's headers (also for a keep-alive connection's next request, and for the
    rest of a body we already answered), a cap on open connections, and a 431 for headers
    over :data:`MAX_HEADER_BYTES` before they are buffered."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guards :func:`guarded_protocol` describes; its limits are
    set by that factory on a subclass."""

    header_timeout: float = 10.0
    max_connections: int = 256
    _head_timer: asyncio.TimerHandle | None = None
    _refused = False

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
        if self.conn.their_state is h11.IDLE:
            head = self.conn.trailing_data[0] + data
            end = head.find(b"\r\n\r\n")
            if (end == -1 and len(head) > MAX_HEADER_BYTES) or end > MAX_HEADER_BYTES:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"the request's headers are over the gateway's limit of {MAX_HEADER_BYTES} bytes",
                )
                return
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def _watch_head(self) -> None:
        """Arm the deadline while we wait for their request (or for the rest of one we answered)."""
        if self._refused or self.transport.is_closing():
            return self._cancel_head_timer()
        waiting = self.conn.their_state is h11.IDLE or (
            self.conn.their_state is h11.SEND_BODY and self.conn.our_state in (h11.DONE, h11.MUST_CLOSE)
        )
        if waiting and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timeout)
        elif not waiting:
            self._cancel_head_timer()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
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
