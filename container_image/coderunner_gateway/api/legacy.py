"""The original API's routes, kept as aliases answered with ``Deprecation: true``:
``/execute`` (which also takes ``command`` for ``code``), ``/v1/sessions/session`` and
``/v1/browser/interactions/{navigate,content}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..browser import check_url
from ..errors import BadRequest
from ..gateway import Gateway
from ..validation import Fields, read_json
from .execute import EXECUTE_FIELDS, ExecuteRoutes

DEPRECATED = {"Deprecation": "true"}


class LegacyRoutes:
    """Listed before the others: ``/v1/sessions/session`` must win over ``/v1/sessions/{sid}``."""

    def __init__(self, gw: Gateway, execute: ExecuteRoutes) -> None:
        self.gw = gw
        self.execute_routes = execute

    def routes(self) -> list[Route]:
        return [
            Route("/execute", self.execute, methods=["POST"]),
            Route("/v1/sessions/session", self.session, methods=["GET", "POST", "DELETE"]),
            Route("/v1/browser/interactions/navigate", self.browser, methods=["POST"]),
            Route("/v1/browser/interactions/content", self.browser, methods=["POST"]),
        ]

    async def execute(self, request: Request) -> Response:
        data = await read_json(request, self.gw.settings.max_request_bytes)
        if "code" not in data and "command" in data:
            data["code"] = data.pop("command")
        req = self.execute_routes.parse({k: v for k, v in data.items() if k in EXECUTE_FIELDS}, strict=False)
        return await self.execute_routes.respond(request, req, DEPRECATED)

    async def session(self, request: Request) -> Response:
        """``/v1/sessions/session``: the original API, session id in query or body."""
        sessions = self.gw.sessions
        if request.method == "POST":
            data = await read_json(request, self.gw.settings.max_request_bytes, allow_empty=True)
            session = await sessions.create(None, Fields(data, set(), strict=False).language())
            return JSONResponse(session.info(), headers=DEPRECATED)
        sid = request.query_params.get("session_id")
        if sid is None and request.method == "DELETE":
            sid = (await read_json(request, self.gw.settings.max_request_bytes, allow_empty=True)).get("session_id")
        if not isinstance(sid, str) or not sid:
            raise BadRequest("give the session as ?session_id=ID", code="invalid_field")
        if request.method == "GET":
            return JSONResponse(sessions.get(sid).info(), headers=DEPRECATED)
        await sessions.delete(sid)
        return JSONResponse({"deleted": sid}, headers=DEPRECATED)

    async def browser(self, request: Request) -> Response:
        """The original routes: {url} -> text; content also as readable_content.content."""
        data = await read_json(request, self.gw.settings.max_request_bytes)
        result = await self.gw.browser.navigate(check_url(data.get("url")))
        if request.url.path.endswith("/content"):
            result["readable_content"] = {"content": result["content"]}
        return JSONResponse(result, headers=DEPRECATED)
