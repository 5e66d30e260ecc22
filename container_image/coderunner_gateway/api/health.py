"""``GET /health``: the one route open without the token."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..gateway import Gateway


class HealthRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [Route("/health", self.health, methods=["GET"])]

    async def health(self, request: Request) -> Response:
        gw = self.gw
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "uptime": round(time.time() - gw.started, 3),
                "sessions": len(gw.sessions.sessions),
                "warm_kernels": len(gw.sessions.pool.warm),
                # warm now, starting, claims of sessions waiting for one, the target it refills to, floor and max
                "kernel_pool": gw.sessions.pool.status(),
                "running_scripts": len(gw.scripts.running),
                "browser": "running" if gw.browser.running else "not started",
                "auth": gw.settings.token is not None,
            }
        )
