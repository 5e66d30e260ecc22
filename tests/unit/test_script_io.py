"""script_io.Records: a script's tagged records read as they arrive, whatever the reads' sizes."""

from __future__ import annotations

import json

import pytest
from coderunner_gateway import script_io
from coderunner_gateway.script_io import TAG_DISPLAY, TAG_EXIT, TAG_STDERR, TAG_STDOUT, Records


def record(tag: int, data: bytes) -> bytes:
    return bytes([tag]) + len(data).to_bytes(4, "big") + data


def read_all(stream: bytes, size: int) -> list[tuple[int, bytes]]:
    """Feed ``stream`` in reads of ``size`` bytes; each run joined."""
    records, out = Records(), []
    for i in range(0, len(stream), size):
        out += [(tag, b"".join(bytes(p) for p in pieces)) for tag, pieces in records.feed(stream[i : i + size])]
    return out


def merged(runs: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for tag, data in runs:
        if out and out[-1][0] == tag and tag in (TAG_STDOUT, TAG_STDERR):
            out[-1] = (tag, out[-1][1] + data)
        else:
            out.append((tag, data))
    return out


STREAM = (
    record(TAG_STDOUT, b"hello ")
    + record(TAG_STDOUT, b"")
    + record(TAG_STDOUT, "wörld\n".encode())
    + record(TAG_STDERR, b"oops\n")
    + record(TAG_DISPLAY, json.dumps({"data": {"text/plain": "x"}}).encode())
    + record(TAG_STDOUT, b"x" * 70000)
    + record(TAG_EXIT, b"")
    + record(TAG_EXIT, b"3")
)
EXPECTED = [
    (TAG_STDOUT, "hello wörld\n".encode()),
    (TAG_STDERR, b"oops\n"),
    (TAG_DISPLAY, json.dumps({"data": {"text/plain": "x"}}).encode()),
    (TAG_STDOUT, b"x" * 70000),
    (TAG_EXIT, b""),
    (TAG_EXIT, b"3"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 4096, 65536, len(STREAM)])
def test_records_are_the_same_whatever_the_reads(size):
    assert merged(read_all(STREAM, size)) == EXPECTED


def test_a_whole_read_gives_one_run_per_stream_in_a_row():
    runs = Records().feed(STREAM)
    assert [tag for tag, _ in runs] == [tag for tag, _ in EXPECTED]
    assert len(runs[0][1]) == 2  # "hello " and "wörld\n": one run, two pieces, no copy made


def test_output_is_passed_on_before_its_record_ends():
    records = Records()
    head = record(TAG_STDOUT, b"y" * 1000)[:505]
    assert [(t, b"".join(bytes(p) for p in ps)) for t, ps in records.feed(head)] == [(TAG_STDOUT, b"y" * 500)]


def test_a_record_over_the_limit_is_skipped_not_gathered(monkeypatch):
    monkeypatch.setattr(script_io, "MAX_RECORD_BYTES", 100)
    stream = record(TAG_DISPLAY, b"z" * 101) + record(TAG_DISPLAY, b"{}") + record(TAG_STDOUT, b"after")
    assert merged(read_all(stream, 7)) == [(TAG_DISPLAY, b"{}"), (TAG_STDOUT, b"after")]
