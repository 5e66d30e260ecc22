"""One headless Chromium per gateway, driven by Playwright; a context per session.

Launched on first use (Debian's ``chromium`` through ``executable_path``, or
``--chromium``), relaunched if it crashes. Only http(s) URLs are opened.
Text and markdown are computed in the page, after its scripts ran, so
JS-rendered content is included and scripts and styles are not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
from typing import Any
from urllib.parse import urlsplit

from .errors import ApiError, BadRequest, Unavailable

log = logging.getLogger("coderunner_gateway")

FORMATS = ("text", "markdown", "html", "links")
WAIT_UNTIL = ("load", "domcontentloaded", "networkidle", "commit")
DEFAULT_VIEWPORT = {"width": 1280, "height": 720}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--disable-default-apps", "--mute-audio"]

# readable text: the rendered page without scripts, styles and hidden parts
TEXT_JS = """() => {
  const body = document.body ? document.body.cloneNode(true) : null;
  if (!body) return '';
  body.querySelectorAll('script,style,noscript,template,svg,iframe').forEach(e => e.remove());
  const holder = document.createElement('div');
  holder.style.position = 'absolute'; holder.style.left = '-99999px';
  holder.appendChild(body); document.documentElement.appendChild(holder);
  const text = body.innerText; holder.remove();
  return text.replace(/\\n{3,}/g, '\\n\\n').trim();
}"""

MARKDOWN_JS = """() => {
  const skip = new Set(['SCRIPT','STYLE','NOSCRIPT','TEMPLATE','SVG','IFRAME','HEAD']);
  const clean = s => s.replace(/\\s+/g, ' ');
  function inline(node) {
    let out = '';
    for (const n of node.childNodes) {
      if (n.nodeType === 3) { out += clean(n.textContent); continue; }
      if (n.nodeType !== 1 || skip.has(n.tagName)) continue;
      const t = n.tagName, inner = inline(n).trim();
      if (t === 'A' && n.href) out += inner ? `[${inner}](${n.href})` : '';
      else if (t === 'STRONG' || t === 'B') out += inner ? `**${inner}**` : '';
      else if (t === 'EM' || t === 'I') out += inner ? `_${inner}_` : '';
      else if (t === 'CODE') out += '`' + n.textContent + '`';
      else if (t === 'BR') out += '\\n';
      else if (t === 'IMG') out += `![${n.alt || ''}](${n.src})`;
      else if (block.has(t)) out += '\\n' + render(n) + '\\n';
      else out += inline(n);
    }
    return out;
  }
  const block = new Set(['P','DIV','SECTION','ARTICLE','MAIN','HEADER','FOOTER','NAV','ASIDE','UL','OL','LI',
                         'PRE','BLOCKQUOTE','TABLE','H1','H2','H3','H4','H5','H6','HR','FORM','FIGURE']);
  function render(node) {
    const parts = [];
    for (const n of node.childNodes) {
      if (n.nodeType === 3) { const t = clean(n.textContent).trim(); if (t) parts.push(t); continue; }
      if (n.nodeType !== 1 || skip.has(n.tagName)) continue;
      const t = n.tagName;
      if (/^H[1-6]$/.test(t)) parts.push('#'.repeat(+t[1]) + ' ' + inline(n).trim());
      else if (t === 'P') parts.push(inline(n).trim());
      else if (t === 'PRE') parts.push('```\\n' + n.innerText.replace(/\\n$/, '') + '\\n```');
      else if (t === 'UL' || t === 'OL') {
        let i = 1;
        parts.push([...n.children].filter(c => c.tagName === 'LI')
          .map(li => (t === 'OL' ? `${i++}. ` : '- ') + inline(li).trim().replace(/\\n+/g, ' ')).join('\\n'));
      } else if (t === 'BLOCKQUOTE') parts.push(render(n).split('\\n').map(l => '> ' + l).join('\\n'));
      else if (t === 'HR') parts.push('---');
      else if (t === 'TABLE') {
        const rows = [...n.querySelectorAll('tr')].map(r => [...r.children].map(c => clean(c.innerText).trim()));
        if (rows.length) {
          const w = Math.max(...rows.map(r => r.length));
          const line = r => '| ' + [...r, ...Array(w - r.length).fill('')].join(' | ') + ' |';
          parts.push([line(rows[0]), '|' + ' --- |'.repeat(w), ...rows.slice(1).map(line)].join('\\n'));
        }
      } else if (block.has(t)) { const r = render(n); if (r) parts.push(r); }
      else { const r = inline(n).trim(); if (r) parts.push(r); }
    }
    return parts.filter(Boolean).join('\\n\\n');
  }
  const title = document.title ? '# ' + document.title + '\\n\\n' : '';
  const body = document.body ? render(document.body) : '';
  return (body.startsWith('# ') ? body : title + body).replace(/\\n{3,}/g, '\\n\\n').trim();
}"""

LINKS_JS = """() => [...document.querySelectorAll('a[href]')]
  .filter(a => /^https?:/.test(a.href))
  .map(a => ({text: (a.innerText || a.title || '').replace(/\\s+/g, ' ').trim(), href: a.href}))"""


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise BadRequest("field 'url' is required: an http(s) URL", code="invalid_url")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise BadRequest(f"only http and https URLs can be opened, not {parts.scheme or 'a bare path'!r}",
                         code="unsupported_scheme")
    if not parts.hostname:
        raise BadRequest(f"{url!r} has no host", code="invalid_url")
    return url.strip()


class Browser:
    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable
        self._pw: Any = None
        self._browser: Any = None
        self._contexts: dict[str, Any] = {}
        self._idle: dict[str, list[Any]] = {}  # open pages to reuse: a new one costs ~120 ms
        self._lock = asyncio.Lock()
        self.launches = 0

    @property
    def running(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    def _executable(self) -> str | None:
        if self.executable:
            return self.executable
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
            if path := shutil.which(name):
                return path
        return None  # Playwright's own build, if it was downloaded

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
                self._browser = await self._pw.chromium.launch(executable_path=self._executable(), args=args)
            except Exception as exc:
                raise Unavailable(f"Chromium did not start: {str(exc).splitlines()[0]} "
                                  "(install Debian's chromium, or pass --chromium PATH)") from exc
            self.launches += 1
            log.info("browser launched (%s)", self._browser.version)
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

    async def _open(self, url: str, session_id: str | None, wait_until: str, timeout: float,
                    viewport: dict[str, int] | None = None) -> tuple[Any, Any]:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        for attempt in (0, 1):
            try:
                page = await self._page(session_id)
                await page.set_viewport_size(viewport or DEFAULT_VIEWPORT)
                break
            except PlaywrightError:
                if attempt:
                    raise
                self._browser = None  # crashed between requests: relaunch once
        try:
            response = await page.goto(url, wait_until=wait_until, timeout=timeout * 1000)
        except PlaywrightTimeout as exc:
            await _close_quietly(page)
            raise ApiError(f"{url} did not finish loading within {timeout:g}s", code="navigation_timeout",
                           status=504) from exc
        except PlaywrightError as exc:
            await _close_quietly(page)
            raise _net_error(url, str(exc)) from exc
        return page, response

    async def _page(self, session_id: str | None) -> Any:
        idle = self._idle.get(session_id or "")
        while idle:
            page = idle.pop()
            if not page.is_closed():
                return page
        return await (await self._context(session_id)).new_page()

    async def _release(self, page: Any, session_id: str | None) -> None:
        """Keep a page that loaded fine for the next request; close the rest."""
        idle = self._idle.setdefault(session_id or "", [])
        if len(idle) < 2 and not page.is_closed() and self.running:
            idle.append(page)
        else:
            await _close_quietly(page)

    async def navigate(self, url: str, session_id: str | None = None, wait_until: str = "load",
                       timeout: float = 30) -> dict[str, Any]:
        page, response = await self._open(url, session_id, wait_until, timeout)
        try:
            return {"status": response.status if response else None, "url": page.url,
                    "title": await page.title(), "content": await page.evaluate(TEXT_JS)}
        finally:
            await self._release(page, session_id)

    async def content(self, url: str, fmt: str = "text", session_id: str | None = None,
                      wait_until: str = "load", timeout: float = 30) -> dict[str, Any]:
        page, response = await self._open(url, session_id, wait_until, timeout)
        try:
            if fmt == "html":
                body: Any = await page.content()
            elif fmt == "markdown":
                body = await page.evaluate(MARKDOWN_JS)
            elif fmt == "links":
                body = await page.evaluate(LINKS_JS)
            else:
                body = await page.evaluate(TEXT_JS)
            return {"status": response.status if response else None, "url": page.url, "title": await page.title(),
                    "format": fmt, "content": body}
        finally:
            await self._release(page, session_id)

    async def screenshot(self, url: str, full_page: bool = False, width: int = 1280, height: int = 720,
                         session_id: str | None = None, wait_until: str = "load", timeout: float = 30) -> bytes:
        page, _ = await self._open(url, session_id, wait_until, timeout, {"width": width, "height": height})
        try:
            return await page.screenshot(full_page=full_page, type="png")
        finally:
            await self._release(page, session_id)

    async def drop_context(self, session_id: str) -> None:
        self._idle.pop(session_id, None)
        ctx = self._contexts.pop(session_id, None)
        if ctx is not None:
            await _close_quietly(ctx)

    def pid(self) -> int | None:
        proc = getattr(getattr(self._browser, "_impl_obj", None), "_browser_process", None)
        return getattr(proc, "pid", None)

    async def close(self) -> None:
        if self._browser is not None:
            await _close_quietly(self._browser)
            self._browser = None
        if self._pw is not None:
            try:
                await self._pw.stop()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
            self._pw = None


async def _close_quietly(obj: Any) -> None:
    try:
        await obj.close()
    except Exception:  # noqa: BLE001 - already gone (crashed, closed)
        pass


def _net_error(url: str, text: str) -> ApiError:
    first = text.splitlines()[0] if text else "navigation failed"
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
        return ApiError("the browser crashed while loading the page; it will be relaunched: retry",
                        code="browser_crashed", status=503)
    return ApiError(f"could not open {url}: {first}", code="navigation_failed", status=400)
