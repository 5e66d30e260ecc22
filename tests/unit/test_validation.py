"""Fields and read_json: request bodies refused with 400 (or 413) and a code that names the problem."""

from __future__ import annotations

import asyncio
import math

import pytest
from coderunner_gateway.errors import ApiError, BadRequest, PayloadTooLarge
from coderunner_gateway.validation import MAX_ARG_BYTES, MAX_NAME_BYTES, Fields, check_unicode, read_json
from starlette.requests import Request


def request(body: bytes, *, chunks: int = 1, content_length: str | None = None) -> Request:
    """A real Starlette request whose body arrives in ``chunks`` pieces."""
    headers = [] if content_length is None else [(b"content-length", content_length.encode())]
    size = max(1, -(-len(body) // chunks))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive() -> dict:
        return messages.pop(0)

    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


def read(body: bytes, limit: int = 1000, **kw) -> dict:
    chunks = kw.pop("chunks", 1)
    content_length = kw.pop("content_length", None)
    return asyncio.run(read_json(request(body, chunks=chunks, content_length=content_length), limit, **kw))


def code_of(exc_info: pytest.ExceptionInfo) -> tuple[int, str]:
    err: ApiError = exc_info.value
    return err.status, err.code


# -- read_json ------------------------------------------------------------------
def test_a_json_object_in_chunks_is_read():
    assert read(b'{"code": "print(1)", "n": [1, 2]}', chunks=5) == {"code": "print(1)", "n": [1, 2]}


@pytest.mark.parametrize("body", [b"{bad", b"\xff\xfe", b"[1, 2]", b'"text"', b"null", b"   ", b""])
def test_what_is_not_a_json_object_is_invalid_json(body):
    with pytest.raises(BadRequest) as exc:
        read(body)
    assert code_of(exc) == (400, "invalid_json")


def test_an_empty_body_may_be_allowed():
    assert read(b"", allow_empty=True) == {}
    assert read(b" \n", allow_empty=True) == {}


def test_deep_nesting_is_invalid_json_not_a_crash():
    with pytest.raises(BadRequest) as exc:
        read(b"[" * 100_000 + b"]" * 100_000, limit=1_000_000)
    assert code_of(exc) == (400, "invalid_json")


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed():
    with pytest.raises(PayloadTooLarge) as exc:
        read(b"{}", limit=10, content_length="11")
    assert code_of(exc) == (413, "payload_too_large")
    with pytest.raises(PayloadTooLarge):
        read(b'{"a": "' + b"x" * 50 + b'"}', limit=10, chunks=8)
    assert read(b'{"a": 1}', limit=8) == {"a": 1}, "exactly the limit is allowed"


def test_a_lone_surrogate_anywhere_is_invalid_unicode():
    for body in (b'{"a": "\\ud800"}', b'{"a": {"b": ["ok", "\\udfff"]}}', b'{"\\ud800": 1}'):
        with pytest.raises(BadRequest) as exc:
            read(body)
        assert code_of(exc) == (400, "invalid_unicode")
    check_unicode({"a": "é\U0001f600", "b": [1, None, {"c": "d"}]})  # real non-ASCII text passes


# -- Fields ---------------------------------------------------------------------
def test_unknown_fields_are_refused_by_name_unless_not_strict():
    with pytest.raises(BadRequest) as exc:
        Fields({"code": "x", "tiemout": 1, "zz": 2}, {"code", "timeout"})
    assert code_of(exc) == (400, "invalid_field")
    assert "'tiemout', 'zz'" in exc.value.message and "known fields: code, timeout" in exc.value.message
    Fields({"code": "x", "tiemout": 1}, {"code"}, strict=False)


def test_str_and_name():
    f = Fields({"s": "v", "n": 3, "e": "", "nul": "a\x00b", "long": "x" * (MAX_NAME_BYTES + 1)}, set(), strict=False)
    assert f.string("s") == "v" and f.string("missing", "dflt") == "dflt"
    assert f.string("e") == ""
    for name, kw in (("n", {}), ("e", {"nonempty": True})):
        with pytest.raises(BadRequest):
            f.string(name, **kw)
    for name in ("nul", "long", "e"):
        with pytest.raises(BadRequest):
            f.name(name)
    assert f.name("e", nonempty=False) == ""
    assert Fields({"n": "é" * (MAX_NAME_BYTES // 2)}, {"n"}).name("n")  # bytes, not characters, are counted


@pytest.mark.parametrize("value", [0, -1, True, "5", math.inf, math.nan, 3601])
def test_number_refuses_what_is_not_a_positive_finite_number_under_the_maximum(value):
    with pytest.raises(BadRequest):
        Fields({"t": value}, {"t"}).number("t", maximum=3600)


def test_number_accepts_ints_and_floats_as_float():
    assert Fields({"t": 2}, {"t"}).number("t", maximum=10) == 2.0
    assert Fields({"t": 10}, {"t"}).number("t", maximum=10) == 10.0
    assert Fields({}, {"t"}).number("t", maximum=10) is None


def test_bool_and_int_refuse_lookalikes():
    f = Fields({"b": 1, "i": True, "j": 5, "k": 2.0, "l": 9}, set(), strict=False)
    with pytest.raises(BadRequest):
        f.boolean("b")
    assert Fields({"b": False}, {"b"}).boolean("b", True) is False
    assert f.boolean("missing", True) is True
    with pytest.raises(BadRequest):
        f.integer("i", 0, low=0, high=10)
    with pytest.raises(BadRequest):
        f.integer("k", 0, low=0, high=10)
    with pytest.raises(BadRequest):
        f.integer("l", 0, low=0, high=8)
    assert f.integer("j", 0, low=5, high=5) == 5 and f.integer("missing", 7, low=0, high=1) == 7


def test_choice_and_language():
    f = Fields({"fmt": "html", "language": "ruby"}, set(), strict=False)
    assert f.choice("fmt", ("text", "html"), "text") == "html"
    assert f.choice("other", ("text", "html"), "text") == "text"
    with pytest.raises(BadRequest):
        f.choice("fmt", ("text",), "text")
    with pytest.raises(BadRequest) as exc:
        f.language()
    assert code_of(exc) == (400, "unknown_language")
    assert Fields({}, {"language"}).language() == "python"
    assert Fields({"language": "bash"}, {"language"}).language() == "bash"


def test_str_list_limits_each_string():
    assert Fields({"a": ["x", ""]}, {"a"}).str_list("a") == ["x", ""]
    assert Fields({}, {"a"}).str_list("a") == []
    for bad in ("x", [1], ["a\x00"], ["x" * (MAX_ARG_BYTES + 1)]):
        with pytest.raises(BadRequest):
            Fields({"a": bad}, {"a"}).str_list("a")


def test_str_map_refuses_what_cannot_be_an_environment_variable():
    assert Fields({"e": {"K": "v", "E": ""}}, {"e"}).str_map("e") == {"K": "v", "E": ""}
    assert Fields({}, {"e"}).str_map("e") == {}
    for bad in (["K=v"], {"K": 1}, {"": "v"}, {"A=B": "v"}, {"K\x00": "v"}, {"K": "v\x00"}, {"K": "x" * MAX_ARG_BYTES}):
        with pytest.raises(BadRequest):
            Fields({"e": bad}, {"e"}).str_map("e")
