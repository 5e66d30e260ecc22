"""Errors the API answers with.

Every user mistake becomes an :class:`ApiError` with a stable ``code``, an
HTTP status and a message that says what to do. The app turns it into
``{"error": {"code": ..., "message": ...}}``; anything else is our bug (500).
"""

from __future__ import annotations

import errno


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"no session {session_id!r}: list sessions with GET /v1/sessions or create one with POST /v1/sessions"
        )


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class TooManySessions(ApiError):
    status = 429
    code = "too_many_sessions"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


PROCESS_LIMIT_MESSAGE = (
    "could not start a process: the sandbox's process limit is reached; end some sessions or background processes"
)
EXIT_PROCESS_LIMIT = 71  # sysexits' EX_OSERR ("cannot fork"): the exit code of a streamed execution refused so


class ProcessLimit(Unavailable):
    """A fork (or a thread) refused with EAGAIN: the sandbox's process limit (RLIMIT_NPROC, a
    container's pids limit) is reached. Not our bug: the user frees processes and tries again."""

    code = "process_limit"

    def __init__(self) -> None:
        super().__init__(PROCESS_LIMIT_MESSAGE)


def process_limit(exc: BaseException | None) -> ProcessLimit | None:
    """A :class:`ProcessLimit` when ``exc``, or what caused it, is a process or thread the limit refused."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ProcessLimit):
            return exc
        if isinstance(exc, OSError) and exc.errno == errno.EAGAIN:
            return ProcessLimit()
        if isinstance(exc, RuntimeError) and str(exc) == "can't start new thread":
            return ProcessLimit()
        exc = exc.__cause__ or exc.__context__
    return None
