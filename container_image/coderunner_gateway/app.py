"""The gateway's ASGI app: the API's areas (``api/``) and the MCP server composed over one
:class:`~coderunner_gateway.gateway.Gateway`, behind the Host/Origin check and the token
(the README's "HTTP API (v1)")."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.types import ASGIApp

from . import mcp
from .api.browser import BrowserRoutes
from .api.error_handlers import EXCEPTION_HANDLERS
from .api.execute import ExecuteRoutes
from .api.files import FileRoutes
from .api.guards import AuthMiddleware, HostOriginGuard
from .api.health import HealthRoutes
from .api.legacy import LegacyRoutes
from .api.sessions import SessionRoutes
from .api.skills import SkillRoutes
from .gateway import Gateway
from .settings import Settings


def create_app(settings: Settings, *, mcp_idle_timeout: float = 600.0) -> tuple[ASGIApp, Gateway]:
    gw = Gateway(settings)
    mcp_server = mcp.build(gw, idle_timeout=mcp_idle_timeout)
    mcp_app = mcp_server.streamable_http_app()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.startup()
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            await gw.close()

    execute = ExecuteRoutes(gw)
    routes = [
        *HealthRoutes(gw).routes(),
        *LegacyRoutes(gw, execute).routes(),  # first: /v1/sessions/session before /v1/sessions/{sid}
        *execute.routes(),
        *SessionRoutes(gw).routes(),
        *BrowserRoutes(gw).routes(),
        *SkillRoutes(gw).routes(),
        *FileRoutes(gw).routes(),
        *mcp_app.routes,  # /mcp
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    return HostOriginGuard(AuthMiddleware(app, settings.token)), gw
