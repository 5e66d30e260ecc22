"""How errors become responses: an :class:`ApiError` its JSON and status, Starlette's 404
and 405 the same shape, anything else a logged 500."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from ..errors import ApiError, process_limit

log = logging.getLogger("coderunner_gateway")


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # registered for ApiError: cannot happen
        return await _internal_error(request, exc)
    return JSONResponse(exc.to_json(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # registered for HTTPException: cannot happen
        return await _internal_error(request, exc)
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = {
        404: f"no route {request.url.path}: see GET /health and the README's API section",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(
        {"error": {"code": codes.get(exc.status_code, "http_error"), "message": message}}, status_code=exc.status_code
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    if limit := process_limit(exc):  # a fork or thread refused (EAGAIN) wherever it was: 503, one line
        log.warning("%s %s: %s", request.method, request.url.path, limit.message)
        return JSONResponse(limit.to_json(), status_code=limit.status)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"error": {"code": "internal_error", "message": f"internal gateway error: {exc!r}"}}, status_code=500
    )


EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    ApiError: _api_error,
    HTTPException: _http_error,
    Exception: _internal_error,
}
