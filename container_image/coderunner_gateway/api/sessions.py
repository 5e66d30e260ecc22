"""``/v1/sessions``: create, list, get, delete, interrupt and restart sessions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..gateway import Gateway
from ..validation import Fields, read_json


class SessionRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/v1/sessions", self.create, methods=["POST"]),
            Route("/v1/sessions", self.list_sessions, methods=["GET"]),
            Route("/v1/sessions/{sid}", self.get, methods=["GET"]),
            Route("/v1/sessions/{sid}", self.delete, methods=["DELETE"]),
            Route("/v1/sessions/{sid}/interrupt", self.interrupt, methods=["POST"]),
            Route("/v1/sessions/{sid}/restart", self.restart, methods=["POST"]),
        ]

    async def create(self, request: Request) -> Response:
        data = await read_json(request, self.gw.settings.max_request_bytes, allow_empty=True)
        f = Fields(data, {"name", "language"})
        session = await self.gw.sessions.create(f.session_name("name"), f.language())
        return JSONResponse(session.info(), status_code=201)

    async def list_sessions(self, request: Request) -> Response:
        return JSONResponse({"sessions": self.gw.sessions.describe()})

    async def get(self, request: Request) -> Response:
        return JSONResponse(self.gw.sessions.get(request.path_params["sid"]).info())

    async def delete(self, request: Request) -> Response:
        session = self.gw.sessions.get(request.path_params["sid"])
        await self.gw.sessions.delete(session.id)
        await self.gw.browser.drop_context(session.id)
        return JSONResponse({"deleted": request.path_params["sid"]})

    async def interrupt(self, request: Request) -> Response:
        session = await self.gw.sessions.interrupt(request.path_params["sid"])
        return JSONResponse(session.info())

    async def restart(self, request: Request) -> Response:
        session = await self.gw.sessions.restart(request.path_params["sid"])
        return JSONResponse(session.info())
