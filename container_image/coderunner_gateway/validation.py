"""Request-body checks that answer 400 with a message naming the field."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import BadRequest, PayloadTooLarge

LANGUAGES = ("python", "bash")
MAX_NAME_BYTES = 255  # a file name (NAME_MAX)
# a session name: used in URLs (/v1/sessions/NAME) and on command lines, so nothing to quote or escape
SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_ARG_BYTES = 128 * 1024 - 1  # one argv or env string (Linux MAX_ARG_STRLEN, with its NUL)
MAX_ARGV_ENV_BYTES = 1024 * 1024  # argv and env together, well under ARG_MAX


async def read_json(request: Any, limit: int, *, allow_empty: bool = False) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the gateway's limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the gateway's limit of {limit} bytes")
    if not body.strip():
        if allow_empty:
            return {}
        raise BadRequest("the request body is empty: send a JSON object", code="invalid_json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}", code="invalid_json") from exc
    except RecursionError as exc:
        raise BadRequest("the request body is nested too deeply", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object", code="invalid_json")
    check_unicode(data)
    return data


def _encodable(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_unicode(data: dict[str, Any]) -> None:
    """Refuse lone surrogates (JSON's ``"\\ud800"``): they are not text, and could be
    neither written to a file, passed to a process nor sent back as UTF-8."""
    for field, value in data.items():
        stack = [field, value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                ok = _encodable(item)
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
                continue
            elif isinstance(item, list):
                stack.extend(item)
                continue
            else:
                continue
            if not ok:
                name = field if _encodable(field) else field.encode("utf-8", "backslashreplace").decode()
                raise BadRequest(
                    f"field {name!r} holds a string that is not valid Unicode (a lone surrogate "
                    "such as \\ud800): send UTF-8 text",
                    code="invalid_unicode",
                )


class Fields:
    """Typed access to a JSON object; unknown keys are refused (catches typos)."""

    def __init__(self, data: dict[str, Any], allowed: set[str], *, strict: bool = True) -> None:
        self.data = data
        if strict and (unknown := sorted(set(data) - allowed)):
            raise BadRequest(
                f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"known fields: {', '.join(sorted(allowed))}",
                code="invalid_field",
            )

    def _bad(self, name: str, what: str) -> BadRequest:
        return BadRequest(f"field {name!r} must be {what}", code="invalid_field")

    def string(self, name: str, default: str | None = None, *, nonempty: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or (nonempty and not value):
            raise self._bad(name, "a non-empty string" if nonempty else "a string")
        return value

    def name(self, name: str, *, nonempty: bool = True) -> str | None:
        """A file or session name: no NUL, at most :data:`MAX_NAME_BYTES` bytes."""
        value = self.string(name, nonempty=nonempty)
        if value is not None and ("\x00" in value or len(value.encode()) > MAX_NAME_BYTES):
            raise self._bad(name, f"a name of at most {MAX_NAME_BYTES} bytes, without NUL")
        return value

    def session_name(self, name: str) -> str | None:
        """A session's name: letters, digits, ``-``, ``_`` and ``.``, at most 64 (as the CLI's)."""
        value = self.string(name)
        if value is not None and not SESSION_NAME.fullmatch(value):
            raise self._bad(name, "letters, digits, '-', '_' and '.' (at most 64)")
        return value

    def number(self, name: str, *, maximum: float) -> float | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise self._bad(name, "a positive number of seconds")
        if value > maximum:
            raise self._bad(name, f"at most {maximum:g} seconds")
        return float(value)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._bad(name, f"a whole number from {low} to {high}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise self._bad(name, f"one of {', '.join(choices)}")
        return value

    def str_list(self, name: str) -> list[str]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(name, "a list of strings")
        for v in value:
            if "\x00" in v or len(v.encode()) > MAX_ARG_BYTES:
                raise self._bad(name, f"a list of strings without NUL, each at most {MAX_ARG_BYTES} bytes")
        return value

    def str_map(self, name: str) -> dict[str, str]:
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) and k for k, v in value.items()):
            raise self._bad(name, "an object of string values")
        for k, v in value.items():
            if "=" in k or "\x00" in k or "\x00" in v or len(k.encode()) + len(v.encode()) + 1 > MAX_ARG_BYTES:
                raise self._bad(
                    name,
                    "an object of variables: names without '=' or NUL, values without NUL, "
                    f"each pair at most {MAX_ARG_BYTES} bytes",
                )
        return value

    def language(self, name: str = "language") -> str:
        value = self.string(name, "python")
        if value not in LANGUAGES:
            raise BadRequest(f"unknown language {value!r}: use one of {', '.join(LANGUAGES)}", code="unknown_language")
        return value
