"""Collector: the aggregated (JSON) result of an execution, bounded in bytes."""

from __future__ import annotations

import asyncio
import base64
import json

from coderunner_gateway.events import Collector, Utf8Chunks, dumps


def collect(max_bytes: int, *events: dict) -> dict:
    c = Collector(max_bytes)

    async def feed() -> None:
        for e in events:
            await c.emit(e)

    asyncio.run(feed())
    return c.result()


START = {"type": "start", "session_id": "s1"}
DONE = {"type": "done", "status": "ok", "exit_code": 0, "execution_time": 0.5}


def test_streams_are_joined_in_order_and_the_frame_is_reported():
    r = collect(
        100,
        START,
        {"type": "stdout", "text": "a"},
        {"type": "stderr", "text": "x"},
        {"type": "stdout", "text": "b\n"},
        DONE,
    )
    assert (r["stdout"], r["stderr"]) == ("ab\n", "x")
    assert (r["session_id"], r["status"], r["exit_code"], r["execution_time"]) == ("s1", "ok", 0, 0.5)
    assert r["truncated"] is False and "dropped" not in r and "message" not in r
    assert "stdout_b64" not in r and r["error"] is None and r["outputs"] == []


def test_output_over_the_limit_keeps_the_head_and_counts_the_rest():
    r = collect(10, START, {"type": "stdout", "text": "0123456"}, {"type": "stderr", "text": "abcdef"}, DONE)
    assert r["stdout"] == "0123456"
    assert r["stderr"] == "abc", "both streams share one budget"
    assert r["truncated"] is True
    assert r["dropped"] == {"stdout": 0, "stderr": 3, "outputs": 0}
    assert "limit of 10 bytes" in r["message"] and "dropped 0 bytes of stdout, 3 of stderr" in r["message"]


def test_a_cut_never_splits_a_utf8_character():
    # "abcd" + "é" (2 bytes) is 6 bytes; with room for 5 the cut goes before "é", not inside it
    r = collect(5, {"type": "stdout", "text": "abcdé"}, DONE)
    assert r["stdout"] == "abcd"
    assert "stdout_b64" not in r
    assert r["dropped"]["stdout"] == 2


def test_bytes_that_are_not_utf8_come_back_exactly_as_b64():
    raw = b"ok\xff\xfe"
    event = {"type": "stdout", **Utf8Chunks().feed(raw, final=True)}
    assert "b64" in event
    r = collect(100, event, DONE)
    assert base64.b64decode(r["stdout_b64"]) == raw
    assert r["stdout"] == "ok\ufffd\ufffd"


def test_rich_outputs_count_against_the_limit_and_are_dropped_whole():
    small = {"type": "display", "data": {"text/plain": "x" * 4}}
    big = {"type": "display", "data": {"image/png": "y" * 50}}
    r = collect(20, small, big, small, DONE)
    assert r["outputs"] == [small, small]
    assert r["dropped"]["outputs"] == 1 and r["truncated"] is True


def test_error_keeps_only_its_three_fields():
    err = {"type": "error", "ename": "ValueError", "evalue": "boom", "traceback": ["tb"], "extra": 1}
    r = collect(100, err, {**DONE, "status": "error", "exit_code": 1})
    assert r["error"] == {"ename": "ValueError", "evalue": "boom", "traceback": ["tb"]}
    assert r["status"] == "error" and r["exit_code"] == 1


def test_what_a_kernel_cut_at_the_source_is_added_and_messages_are_joined():
    done = {
        **DONE,
        "status": "died",
        "exit_code": 137,
        "dropped": {"stdout": 7},
        "message": "the kernel died",
        "state_lost": True,
        "signal": "SIGKILL",
    }
    r = collect(100, {"type": "stdout", "text": "hi"}, done)
    assert r["stdout"] == "hi"
    assert r["truncated"] is True and r["dropped"]["stdout"] == 7
    assert r["message"].endswith("; the kernel died") and "limit of 100 bytes" in r["message"]
    assert r["state_lost"] is True and r["signal"] == "SIGKILL"


def test_a_result_without_done_has_no_status():
    r = collect(100, START, {"type": "stdout", "text": "x"})
    assert r["status"] is None and r["exit_code"] is None and r["stdout"] == "x"


def test_utf8_chunks_wait_for_a_split_character():
    chunks = Utf8Chunks()
    data = "é".encode()
    assert chunks.feed(data[:1]) is None
    assert chunks.feed(data[1:]) == {"text": "é"}


def test_an_event_is_always_one_line():
    line = dumps({"type": "stdout", "text": "a\u2028b\u2029c\x85d\ne"})
    assert line.endswith(b"\n") and len(line.decode().splitlines()) == 1


def test_json_bytes_takes_what_orjson_refuses_and_stays_valid_json():
    from coderunner_gateway.events import json_bytes

    value = {"big": 2**70, "text": "é\u2028"}
    assert json.loads(json_bytes(value)) == value
    assert json.loads(json_bytes({"nan": float("nan")})) == {"nan": None}  # not the invalid NaN
    lone = {"text": "a\ud800b"}  # a lone surrogate: escaped, so the bytes are valid UTF-8 JSON
    data = json_bytes(lone)
    data.decode("utf-8")
    assert json.loads(data) == lone
    assert json.loads(json_bytes({"x": [1, 2.5, None, True]})) == {"x": [1, 2.5, None, True]}
