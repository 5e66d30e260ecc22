"""``/v1/browser``: open a page in the sandbox's headless Chromium; its text, markdown,
HTML or links, or a screenshot."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..browser import FORMATS, WAIT_UNTIL, check_url
from ..gateway import Gateway
from ..validation import Fields, read_json

PAGE_FIELDS = {"url", "session_id", "wait_until", "timeout"}


@dataclass(frozen=True)
class PageRequest:
    """What every browser route takes: the page, and how long and how far to load it."""

    url: str
    session_id: str | None
    wait_until: str
    timeout: float


class BrowserRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[Route]:
        return [
            Route("/v1/browser/navigate", self.navigate, methods=["POST"]),
            Route("/v1/browser/content", self.content, methods=["POST"]),
            Route("/v1/browser/screenshot", self.screenshot, methods=["POST"]),
        ]

    async def _page_request(self, request: Request, extra: set[str]) -> tuple[Fields, PageRequest]:
        data = await read_json(request, self.gw.settings.max_request_bytes)
        f = Fields(data, PAGE_FIELDS | extra)
        url = check_url(data.get("url"))
        sid = f.string("session_id", nonempty=True)
        wait_until = f.choice("wait_until", WAIT_UNTIL, "load")
        timeout = f.number("timeout", maximum=120) or 30.0
        if sid is not None:
            sid = self.gw.sessions.get(sid).id
        return f, PageRequest(url, sid, wait_until, timeout)

    async def navigate(self, request: Request) -> Response:
        _, p = await self._page_request(request, set())
        return JSONResponse(await self.gw.browser.navigate(p.url, p.session_id, p.wait_until, p.timeout))

    async def content(self, request: Request) -> Response:
        f, p = await self._page_request(request, {"format"})
        fmt = f.choice("format", FORMATS, "text")
        return JSONResponse(
            await self.gw.browser.content(
                p.url, fmt=fmt, session_id=p.session_id, wait_until=p.wait_until, timeout=p.timeout
            )
        )

    async def screenshot(self, request: Request) -> Response:
        f, p = await self._page_request(request, {"full_page", "width", "height"})
        png = await self.gw.browser.screenshot(
            p.url,
            full_page=f.boolean("full_page"),
            width=f.integer("width", 1280, low=1, high=8000),
            height=f.integer("height", 720, low=1, high=8000),
            session_id=p.session_id,
            wait_until=p.wait_until,
            timeout=p.timeout,
        )
        return Response(png, media_type="image/png")
