"""What every request passes before a route: ``Host`` and ``Origin`` checks (DNS rebinding,
cross-site pages), then the token. The HTTP protocol's own limits (header size and time,
connections) are in ``http_guard.py``."""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ApiError, Unauthorized


class AuthMiddleware:
    """Every route but ``GET /health`` needs the token (Bearer or X-API-Key)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or scope["path"] == "/health":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if not given or not hmac.compare_digest(given, self.token):
            err = Unauthorized(
                "missing or wrong token: send 'Authorization: Bearer <token>' (the token is in the gateway's "
                "CODERUNNER_TOKEN; `coderunner status` shows where)"
                if not given
                else "wrong token",
            )
            return await JSONResponse(err.to_json(), status_code=401, headers={"WWW-Authenticate": "Bearer"})(
                scope, receive, send
            )
        return await self.app(scope, receive, send)


def _host_allowed(host: str, unix: bool) -> bool:
    """``Host`` names this machine: an IP literal (any: a VM's or container's address) or
    localhost. A web page can only reach us under its own DNS name (DNS rebinding),
    which this refuses. Over a unix socket the CLI sends ``coderunner``."""
    try:
        name = urlsplit(f"//{host}").hostname
        urlsplit(f"//{host}").port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if not name:
        return False
    if name in ("localhost", "localhost.") or (unix and name == "coderunner"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _origin_allowed(origin: str) -> bool:
    """Only pages served from this machine's loopback may call us from a browser;
    ``null`` (sandboxed frames, file: pages) and every other site may not."""
    try:
        parts = urlsplit(origin)
        name = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not name or parts.username is not None:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostOriginGuard:
    """Every route, ``/health`` included, before the token: ``Host`` must name this machine
    and ``Origin``, when a browser sends one, a loopback page (see the two checks)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin")
            server = scope.get("server")
            unix = server is None or server[1] is None
            err = None
            if not _host_allowed(host, unix):
                err = ApiError(
                    f"Host {host!r} is not allowed: connect by IP address or localhost",
                    code="host_not_allowed",
                    status=403,
                )
            elif origin is not None and not _origin_allowed(origin.decode("latin-1")):
                err = ApiError(
                    f"Origin {origin.decode('latin-1')!r} is not allowed: only pages on this "
                    "machine's loopback (http://localhost, http://127.0.0.1) may call the gateway",
                    code="origin_not_allowed",
                    status=403,
                )
            if err is not None:
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await JSONResponse(err.to_json(), status_code=403)(scope, receive, send)
        return await self.app(scope, receive, send)
