"""wire.py: the gateway's own send and receive of kernel messages, checked against
jupyter_client's Session (what the kernel runs) over a real ZeroMQ socket pair."""

from __future__ import annotations

import asyncio
import hmac
import json

import pytest
import zmq
import zmq.asyncio
from coderunner_gateway import wire
from jupyter_client.session import DELIM, Session


@pytest.fixture
def pair():
    ctx = zmq.asyncio.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire-test")
    b.connect("inproc://wire-test")
    yield a, b
    a.close(0)
    b.close(0)
    ctx.term()


def test_a_sent_request_is_what_the_kernels_session_accepts(pair):
    a, b = pair
    session = Session(key=b"secret-key")
    msg_id = wire.send(a, session, "execute_request", {"code": "print('\u00e9')", "silent": False}, {"k": 1})
    parts = b._shadow_sock.recv_multipart()
    idents, frames = session.feed_identities(parts)
    msg = Session(key=b"secret-key").deserialize(frames)  # checks the signature, as the kernel does
    assert msg["header"]["msg_id"] == msg_id
    assert msg["header"]["msg_type"] == "execute_request"
    assert msg["header"]["session"] == session.session
    assert msg["content"] == {"code": "print('\u00e9')", "silent": False}
    assert msg["metadata"] == {"k": 1}
    with pytest.raises(ValueError, match="Invalid Signature"):
        Session(key=b"another-key").deserialize(frames)


def test_two_requests_never_share_an_id(pair):
    a, b = pair
    session = Session(key=b"k")
    ids = {wire.send(a, session, "execute_request", {}, {}) for _ in range(100)}
    assert len(ids) == 100


def _signed(session: Session, frames: list[bytes]) -> list[bytes]:
    mac = hmac.new(session.key, digestmod="sha256")
    for f in frames:
        mac.update(f)
    return [DELIM, mac.hexdigest().encode(), *frames]


def test_a_received_message_keeps_nan_and_dates_as_json_has_them(pair):
    a, b = pair
    session = Session(key=b"k")
    header = json.dumps({"msg_id": "m", "msg_type": "display_data", "date": "2026-11-27T05:00:00Z"}).encode()
    content = b'{"data": {"x": NaN}}'  # json writes NaN; orjson refuses it
    b._shadow_sock.send_multipart(_signed(session, [header, b'{"msg_id": "p"}', b"{}", content]))
    msg = asyncio.run(wire.recv(a, session, 5))
    assert msg["msg_type"] == "display_data"
    assert msg["header"]["date"] == "2026-11-27T05:00:00Z"
    assert msg["parent_header"] == {"msg_id": "p"}
    assert str(msg["content"]["data"]["x"]) == "nan"


def test_forged_or_broken_messages_are_bad_messages(pair):
    a, b = pair
    session = Session(key=b"k")
    frames = [b'{"msg_id": "m"}', b"{}", b"{}", b"{}"]
    b._shadow_sock.send_multipart([DELIM, b"0" * 64, *frames])  # a wrong signature
    with pytest.raises(wire.BadMessage, match="signature"):
        asyncio.run(wire.recv(a, session, 5))
    b._shadow_sock.send_multipart(_signed(session, [b"{not json", b"{}", b"{}", b"{}"]))
    with pytest.raises(wire.BadMessage, match="not JSON"):
        asyncio.run(wire.recv(a, session, 5))
    b._shadow_sock.send_multipart(_signed(session, frames)[:4])  # too few frames
    with pytest.raises(wire.BadMessage, match="frames"):
        asyncio.run(wire.recv(a, session, 5))


def test_nothing_to_read_is_none_after_the_timeout(pair):
    a, _ = pair
    assert asyncio.run(wire.recv(a, Session(key=b"k"), 0.05)) is None


def test_a_message_sent_while_waiting_wakes_the_wait_and_none_is_lost(pair):
    a, b = pair
    session = Session(key=b"k")
    frames = [b'{"msg_id": "m"}', b"{}", b"{}", b'{"n": 0}']

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        got = []
        for n in range(50):  # each sent after the wait began, or before it: both must arrive
            content = json.dumps({"n": n}).encode()
            delay = 0.002 if n % 2 else 0
            loop.call_later(delay, b._shadow_sock.send_multipart, _signed(session, [*frames[:3], content]))
            if n % 2 == 0:
                await asyncio.sleep(0.002)
            msg = await wire.recv(a, session, 5)
            got.append(msg["content"]["n"])
        assert await wire.recv(a, session, 0.02) is None  # nothing more: the wait times out
        wire.forget(a)
        return got

    assert asyncio.run(main()) == list(range(50))


def test_forget_gives_back_the_reader_and_its_descriptor(pair):
    import os

    a, b = pair

    async def main() -> None:
        assert await wire.recv(a, Session(key=b"k"), 0.01) is None
        fd = a.__dict__["_coderunner_waiter"].fd
        os.fstat(fd)  # open while watched
        wire.forget(a)
        with pytest.raises(OSError):
            os.fstat(fd)
        assert "_coderunner_waiter" not in a.__dict__

    asyncio.run(main())
