"""A kernel's replies read straight off its ZMQ sockets: the hot path of a session's execution.

jupyter_client's async ``get_iopub_msg``/``get_shell_msg`` cost about 1.5 ms of CPU per
``print(1)`` more than this: each message goes through an asyncio poll future, a second
receive future, and ``Session.deserialize``, which turns every ISO date of the header and
parent header into a ``datetime`` with dateutil. The gateway reads only the message type,
the parent's ``msg_id``, the content and the metadata, so it skips that work; it still
refuses a message whose HMAC signature is wrong, as ``deserialize`` does.

Sending stays with jupyter_client (``Session.send``): it is one message per execution.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import zmq
from jupyter_client.session import DELIM, Session


class BadMessage(ValueError):
    """A kernel sent a message that is not signed with the session's key, or is malformed."""


def decode(parts: list[bytes], session: Session) -> dict[str, Any]:
    """One wire message (identities, delimiter, signature, header, parent, metadata,
    content, buffers) as a dict shaped like jupyter_client's, with dates left as strings."""
    try:
        i = parts.index(DELIM)
    except ValueError:
        raise BadMessage("a kernel message without its delimiter") from None
    signature, *frames = parts[i + 1 :]
    if len(frames) < 4:
        raise BadMessage(f"a kernel message with {len(frames)} frames after its signature (4 or more expected)")
    if session.auth is not None:
        mac = session.auth.copy()
        for frame in frames[:4]:
            mac.update(frame)
        if not hmac.compare_digest(mac.hexdigest().encode("ascii"), signature):
            raise BadMessage("a kernel message with a wrong signature")
    header = json.loads(frames[0])
    return {
        "header": header,
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
        "parent_header": json.loads(frames[1]),
        "metadata": json.loads(frames[2]),
        "content": json.loads(frames[3]),
        "buffers": [memoryview(b) for b in frames[4:]],
    }


async def recv(socket: Any, session: Session, timeout: float | None) -> dict[str, Any] | None:
    """The next message on ``socket`` (a ``zmq.asyncio`` socket), or None after ``timeout``
    seconds (None: wait for ever). A message already queued is read without a future."""
    shadow = socket._shadow_sock  # the same zmq socket, blocking API: read what is there at once
    while True:
        try:
            parts = shadow.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            if not await socket.poll(None if timeout is None else int(timeout * 1000), zmq.POLLIN):
                return None
            continue
        return decode(parts, session)
