"""One headless Chromium per gateway, driven by Playwright; a context per session.

Launched on first use (Debian's ``chromium`` through ``executable_path``, or
``--chromium``), relaunched if it crashes. Only http(s) URLs are opened.

Memory is bounded: V8's heap is capped (``--max-old-space-size``), a renderer
process over :data:`RENDERER_MEMORY_BYTES` is killed by a watchdog, a page whose
document declares more than :data:`MAX_PAGE_BYTES` is refused (413), and what a
page returns is cut at :data:`MAX_CONTENT_CHARS`. A page that crashes its
renderer answers 502 ``page_crashed``; the browser stays usable.
Text and markdown are computed in the page, after its scripts ran, so
JS-rendered content is included and scripts and styles are not.

Over ~300 lines because the browser's lifecycle, its pages and the guards on what a page
may cost (size, renderer memory, crashes turned into API errors) all act on the one Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
from typing import Any
from urllib.parse import urlsplit

from . import programs
from .errors import ApiError, BadRequest, Unavailable

log = logging.getLogger("coderunner_gateway")

FORMATS = ("text", "markdown", "html", "links")
WAIT_UNTIL = ("load", "domcontentloaded", "networkidle", "commit")
DEFAULT_VIEWPORT = {"width": 1280, "height": 720}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-default-apps",
    "--mute-audio",
    "--js-flags=--max-old-space-size=512",
]
RENDERER_MEMORY_BYTES = 1024 * 1024 * 1024  # a renderer above this is killed (its page answers page_crashed)
MAX_PAGE_BYTES = 32 * 1024 * 1024  # a document declaring more (Content-Length) is refused
MAX_CONTENT_CHARS = 10 * 1024 * 1024  # text, markdown or html returned, at most

# read in the page (programs/*.js): readable text (the rendered page without scripts,
# styles and hidden parts), markdown, the HTML (cut at a limit), the http(s) links
TEXT_JS = programs.load("text.js")
MARKDOWN_JS = programs.load("markdown.js")
HTML_JS = programs.load("html.js")
LINKS_JS = programs.load("links.js")


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise BadRequest("field 'url' is required: an http(s) URL", code="invalid_url")
    if any(ord(c) < 0x20 or c == "\x7f" for c in url.strip()):
        raise BadRequest("the URL holds control characters", code="invalid_url")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
    except ValueError as exc:  # a malformed [IPv6] host ("http://[::1", "http://[name]/") or port
        raise BadRequest(f"{url.strip()!r} is not a valid URL: {exc}", code="invalid_url") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise BadRequest(
            f"only http and https URLs can be opened, not {parts.scheme or 'a bare path'!r}", code="unsupported_scheme"
        )
    if not parts.hostname:
        raise BadRequest(f"{url!r} has no host", code="invalid_url")
    return url.strip()


class Browser:
    def __init__(self, executable: str | None = None, jail: Any = None) -> None:
        self.executable = executable
        # Chromium renders pages that code chooses: it runs in a cell of its own, as code
        # does, never with the gateway's identity (jail None: started directly, as tests do)
        self.jail = jail
        self._cell: Any = None
        self._pw: Any = None
        self._browser: Any = None
        self._contexts: dict[str, Any] = {}
        self._idle: dict[str, list[Any]] = {}  # open pages to reuse: a new one costs ~120 ms
        self._lock = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()  # closing refused pages, abandoned loads

    @property
    def running(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    def _executable(self) -> str | None:
        path = self.executable or next(
            (
                p
                for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                if (p := shutil.which(name))
            ),
            None,
        )
        if path is None or self.jail is None or self.jail.name == "none":
            return path  # None: Playwright's own build, if it was downloaded
        if self._cell is not None:  # a relaunch: whatever is left of the last one goes
            self.jail.close_cell(self._cell)
        self._cell = self.jail.open_cell("browser")
        return self.jail.wrapper(self._cell, os.path.realpath(path), {})

    async def _ensure(self) -> Any:
        async with self._lock:
            if self.running:
                return self._browser
            try:
                from playwright.async_api import async_playwright
            except ImportError as exc:
                raise Unavailable("the browser needs Playwright: pip install playwright") from exc
            if self._pw is None:
                self._pw = await async_playwright().start()
            self._contexts.clear()
            self._idle.clear()
            args = ARGS + shlex.split(os.environ.get("CODERUNNER_CHROMIUM_ARGS", ""))
            try:
                executable = await asyncio.to_thread(self._executable)  # may write the cell's wrapper
                self._browser = await self._pw.chromium.launch(executable_path=executable, args=args)
            except Exception as exc:
                raise Unavailable(
                    f"Chromium did not start: {str(exc).splitlines()[0]} "
                    "(install Debian's chromium, or pass --chromium PATH)"
                ) from exc
            log.info("browser launched (%s)", self._browser.version)
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = asyncio.create_task(_watch_renderers())
            ctx = await self._browser.new_context(viewport=DEFAULT_VIEWPORT)
            self._contexts[""] = ctx
            self._idle[""] = [await ctx.new_page()]  # the first request finds a page ready
            return self._browser

    async def _context(self, session_id: str | None) -> Any:
        browser = await self._ensure()
        key = session_id or ""
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = await browser.new_context(viewport=DEFAULT_VIEWPORT)
            self._contexts[key] = ctx
        return ctx

    async def _open(
        self, url: str, session_id: str | None, wait_until: str, timeout: float, viewport: dict[str, int] | None = None
    ) -> tuple[Any, Any]:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        page = await self._sized_page(session_id, viewport)
        too_large: list[int] = []
        refused = asyncio.Event()

        def on_response(resp: Any) -> None:
            if resp.request.is_navigation_request() and resp.frame == page.main_frame:
                with contextlib.suppress(ValueError, TypeError):
                    size = int(resp.headers.get("content-length", "0"))
                    if size > MAX_PAGE_BYTES:
                        too_large.append(size)
                        refused.set()
                        self._keep(asyncio.ensure_future(_close_quietly(page)))  # stops the download

        page.on("response", on_response)
        try:
            # answer as soon as a page is refused: closing it (and so the navigation) may take
            # long when its renderer is busy with the download
            goto = asyncio.ensure_future(page.goto(url, wait_until=wait_until, timeout=timeout * 1000))
            stop = asyncio.ensure_future(refused.wait())
            await asyncio.wait({goto, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if too_large:
                goto.cancel()
                goto.add_done_callback(lambda t: t.cancelled() or t.exception())  # nobody waits for it
                self._keep(goto)
                raise PlaywrightError("page too large")
            response = goto.result()
        except PlaywrightTimeout as exc:
            await _close_quietly(page)
            raise ApiError(
                f"{url} did not finish loading within {timeout:g}s", code="navigation_timeout", status=504
            ) from exc
        except PlaywrightError as exc:
            await _close_quietly(page)
            if too_large:
                raise ApiError(
                    f"{url} is {too_large[0]} bytes, over the browser's limit of {MAX_PAGE_BYTES}",
                    code="page_too_large",
                    status=413,
                ) from exc
            raise _net_error(url, str(exc)) from exc
        finally:
            page.remove_listener("response", on_response)
        return page, response

    async def _sized_page(self, session_id: str | None, viewport: dict[str, int] | None) -> Any:
        """A page of the session's context at ``viewport``; the browser relaunched once if it crashed."""
        from playwright.async_api import Error as PlaywrightError

        for attempt in (0, 1):
            try:
                page = await self._page(session_id)
                await page.set_viewport_size(viewport or DEFAULT_VIEWPORT)
                return page
            except PlaywrightError:
                if attempt:
                    raise
                self._browser = None  # crashed between requests: relaunch once
        raise AssertionError("unreachable")

    async def _page(self, session_id: str | None) -> Any:
        idle = self._idle.get(session_id or "")
        while idle:
            page = idle.pop()
            if not page.is_closed():
                return page
        return await (await self._context(session_id)).new_page()

    async def _release(self, page: Any, session_id: str | None, ok: bool = True) -> None:
        """Keep a page that loaded fine for the next request; close the rest."""
        idle = self._idle.setdefault(session_id or "", [])
        if ok and len(idle) < 2 and not page.is_closed() and self.running:
            idle.append(page)
        else:
            await _close_quietly(page)

    async def navigate(
        self, url: str, session_id: str | None = None, wait_until: str = "load", timeout: float = 30
    ) -> dict[str, Any]:
        page, response = await self._open(url, session_id, wait_until, timeout)
        async with self._reading(page, url, session_id):
            return {
                "status": response.status if response else None,
                "url": page.url,
                "title": await page.title(),
                "content": _cut(await page.evaluate(TEXT_JS)),
            }

    async def content(
        self, url: str, fmt: str = "text", session_id: str | None = None, wait_until: str = "load", timeout: float = 30
    ) -> dict[str, Any]:
        page, response = await self._open(url, session_id, wait_until, timeout)
        async with self._reading(page, url, session_id):
            if fmt == "html":
                body: Any = _cut(await page.evaluate(HTML_JS, MAX_CONTENT_CHARS))
            elif fmt == "markdown":
                body = _cut(await page.evaluate(MARKDOWN_JS))
            elif fmt == "links":
                body = (await page.evaluate(LINKS_JS))[:100_000]
            else:
                body = _cut(await page.evaluate(TEXT_JS))
            return {
                "status": response.status if response else None,
                "url": page.url,
                "title": await page.title(),
                "format": fmt,
                "content": body,
            }

    async def screenshot(
        self,
        url: str,
        full_page: bool = False,
        width: int = 1280,
        height: int = 720,
        session_id: str | None = None,
        wait_until: str = "load",
        timeout: float = 30,
    ) -> bytes:
        page, _ = await self._open(url, session_id, wait_until, timeout, {"width": width, "height": height})
        async with self._reading(page, url, session_id):
            return await page.screenshot(full_page=full_page, type="png")

    @contextlib.asynccontextmanager
    async def _reading(self, page: Any, url: str, session_id: str | None):
        """Read a loaded page; a page that failed meanwhile (crashed) is closed, not reused."""
        from playwright.async_api import Error as PlaywrightError

        try:
            yield
        except PlaywrightError as exc:
            await self._release(page, session_id, ok=False)
            raise _net_error(url, str(exc)) from exc
        except BaseException:
            await self._release(page, session_id, ok=False)
            raise
        await self._release(page, session_id)

    def _keep(self, future: asyncio.Future[Any]) -> None:
        """Hold a future nobody awaits until it is done (the loop keeps only weak references)."""
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    async def drop_context(self, session_id: str) -> None:
        self._idle.pop(session_id, None)
        ctx = self._contexts.pop(session_id, None)
        if ctx is not None:
            await _close_quietly(ctx)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._browser is not None:
            await _close_quietly(self._browser)
            self._browser = None
        if self._pw is not None:
            try:
                await self._pw.stop()
            except Exception:  # shutting down anyway
                pass
            self._pw = None
        if self._cell is not None:
            self.jail.close_cell(self._cell)
            self._cell = None


async def _close_quietly(obj: Any, timeout: float = 10) -> None:
    """Close a page, context or browser, never waiting more than ``timeout``: closing a page
    whose renderer was killed mid-load can wait for ever."""
    try:
        await asyncio.wait_for(obj.close(), timeout)
    except Exception:  # already gone (crashed, closed), or hung
        pass


def _cut(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_CONTENT_CHARS:
        return text[:MAX_CONTENT_CHARS] + f"\n[cut at {MAX_CONTENT_CHARS} characters]"
    return text


def _descendants(root: int) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        frontier += kids
    return found


def _kill_big_renderers(page_size: int) -> None:
    """Kill any Chromium renderer of ours above :data:`RENDERER_MEMORY_BYTES` (reads /proc: run off the loop)."""
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * page_size
            if rss <= RENDERER_MEMORY_BYTES:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"--type=renderer" not in f.read():
                    continue
            os.kill(pid, signal.SIGKILL)
            log.warning(
                "browser: killed renderer %d at %d MiB (limit %d MiB)", pid, rss >> 20, RENDERER_MEMORY_BYTES >> 20
            )
        except (OSError, ValueError, IndexError):
            continue


async def _watch_renderers(interval: float = 0.2) -> None:
    """Kill any Chromium renderer above :data:`RENDERER_MEMORY_BYTES` (no cgroups here to do it)."""
    page_size = os.sysconf("SC_PAGE_SIZE")
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(_kill_big_renderers, page_size)


def _net_error(url: str, text: str) -> ApiError:
    first = text.splitlines()[0] if text else "navigation failed"
    if "crash" in text.lower():
        return ApiError(
            f"{url} crashed the browser's renderer (it may have used more memory than the browser "
            f"allows, {RENDERER_MEMORY_BYTES >> 20} MiB); the browser stays usable",
            code="page_crashed",
            status=502,
        )
    host = urlsplit(url).hostname
    if "ERR_NAME_NOT_RESOLVED" in text:
        return ApiError(f"unknown host {host!r}: it does not resolve", code="unknown_host", status=400)
    if "ERR_CONNECTION_REFUSED" in text:
        return ApiError(f"nothing listens at {url} (connection refused)", code="connection_refused", status=400)
    if "ERR_INTERNET_DISCONNECTED" in text or "ERR_NETWORK" in text or "ERR_ADDRESS_UNREACHABLE" in text:
        return ApiError(f"{host!r} is unreachable from the sandbox: {first}", code="unreachable", status=400)
    if "net::ERR_" in text:
        return ApiError(f"could not open {url}: {first}", code="navigation_failed", status=400)
    if "Target" in text and "closed" in text:
        return ApiError(
            "the browser crashed while loading the page; it will be relaunched: retry",
            code="browser_crashed",
            status=503,
        )
    return ApiError(f"could not open {url}: {first}", code="navigation_failed", status=400)
