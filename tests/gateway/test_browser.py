"""The browser against pages served by a local test server, with real Chromium."""

from __future__ import annotations

import io
import os
import shutil
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import descendants, pid_alive, start_gateway

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")

# no DNS at all from tests: every name but localhost fails to resolve
NO_DNS = {"CODERUNNER_CHROMIUM_ARGS": "--host-resolver-rules='MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1'"}

ARTICLE = """<!doctype html><html><head><title>Test Article</title>
<style>body { color: red } .secret-style {}</style>
<script>var hidden = "SCRIPT-TEXT-MUST-NOT-APPEAR";</script></head>
<body><h1>Main Heading</h1><p>First <b>bold</b> paragraph with a <a href="/other">relative link</a>.</p>
<ul><li>apple</li><li>banana</li></ul>
<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
<p style="display:none">invisible words</p>
<a href="https://example.org/abs">Absolute</a><noscript>NOSCRIPT-TEXT</noscript></body></html>"""

JS_PAGE = """<html><head><title>JS</title></head><body><div id="root">loading</div>
<script>setTimeout(() => { document.getElementById('root').textContent = 'rendered by javascript'; }, 100);</script>
</body></html>"""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, body: str, status: int = 200, headers: dict | None = None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/article":
            self._send(ARTICLE)
        elif self.path == "/js":
            self._send(JS_PAGE)
        elif self.path == "/redirect":
            self._send("", 302, {"Location": "/article"})
        elif self.path == "/slow":
            time.sleep(8)
            self._send("<p>slow</p>")
        elif self.path == "/tall":
            self._send("<body style='margin:0'><div style='height:3000px;background:#08f'>tall</div></body>")
        elif self.path == "/set-cookie":
            self._send("<p>set</p>", headers={"Set-Cookie": "flavour=oat; Path=/"})
        elif self.path == "/show-cookie":
            self._send(f"<p>cookie:{self.headers.get('Cookie', 'none')}</p>")
        else:
            self._send("<p>missing</p>", 404)


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = start_gateway(tmp_path_factory.mktemp("bgw"), "--pool-size", "1", env=NO_DNS)
    yield g
    g.stop()


def post(gw, path, **body):
    return gw.client().post(path, json=body)


def test_navigate_follows_redirects_and_reads_text(gw, site):
    r = post(gw, "/v1/browser/navigate", url=f"{site}/redirect")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == 200 and body["url"] == f"{site}/article" and body["title"] == "Test Article"
    text = body["content"]
    assert "Main Heading" in text and "First bold paragraph" in text and "banana" in text
    for absent in ("SCRIPT-TEXT-MUST-NOT-APPEAR", "color: red", "NOSCRIPT-TEXT", "invisible words"):
        assert absent not in text


def test_content_formats(gw, site):
    md = post(gw, "/v1/browser/content", url=f"{site}/article", format="markdown").json()["content"]
    assert "# Main Heading" in md
    assert "**bold**" in md and f"[relative link]({site}/other)" in md
    assert "- apple\n- banana" in md and "| k | v |" in md
    assert "SCRIPT-TEXT" not in md
    html = post(gw, "/v1/browser/content", url=f"{site}/article", format="html").json()["content"]
    assert "<h1>Main Heading</h1>" in html
    links = post(gw, "/v1/browser/content", url=f"{site}/article", format="links").json()["content"]
    assert {"text": "relative link", "href": f"{site}/other"} in links
    assert {"text": "Absolute", "href": "https://example.org/abs"} in links
    assert post(gw, "/v1/browser/content", url=f"{site}/article", format="pdf").status_code == 400


def test_javascript_rendered_content_appears(gw, site):
    r = post(gw, "/v1/browser/content", url=f"{site}/js", wait_until="networkidle")
    assert "rendered by javascript" in r.json()["content"]


def test_screenshot_is_a_png_of_the_asked_size(gw, site):
    from PIL import Image

    r = post(gw, "/v1/browser/screenshot", url=f"{site}/article", width=640, height=360)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (640, 360)
    full = post(gw, "/v1/browser/screenshot", url=f"{site}/tall", width=400, height=300, full_page=True)
    assert Image.open(io.BytesIO(full.content)).size == (400, 3000)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "unsupported_scheme"),
        ("chrome://settings", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("not a url", "unsupported_scheme"),
        ("http://", "invalid_url"),
        ("", "invalid_url"),
        ("http://no-such-host.invalid/", "unknown_host"),
    ],
)
def test_bad_urls_are_clear_4xx(gw, url, code):
    r = post(gw, "/v1/browser/navigate", url=url)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


def test_refused_connection(gw):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = post(gw, "/v1/browser/navigate", url=f"http://127.0.0.1:{port}/")
    assert r.status_code == 400 and r.json()["error"]["code"] == "connection_refused"


def test_slow_page_times_out_and_browser_stays_usable(gw, site):
    t0 = time.monotonic()
    r = post(gw, "/v1/browser/navigate", url=f"{site}/slow", timeout=1)
    assert r.status_code == 504 and r.json()["error"]["code"] == "navigation_timeout"
    assert time.monotonic() - t0 < 6
    assert post(gw, "/v1/browser/navigate", url=f"{site}/article").json()["title"] == "Test Article"


def test_sessions_have_their_own_cookies(gw, site):
    a, b = gw.new_session(language="bash"), gw.new_session(language="bash")
    post(gw, "/v1/browser/navigate", url=f"{site}/set-cookie", session_id=a)
    seen_a = post(gw, "/v1/browser/navigate", url=f"{site}/show-cookie", session_id=a).json()["content"]
    seen_b = post(gw, "/v1/browser/navigate", url=f"{site}/show-cookie", session_id=b).json()["content"]
    assert seen_a == "cookie:flavour=oat" and seen_b == "cookie:none"
    assert post(gw, "/v1/browser/navigate", url=site, session_id="s-unknown").status_code == 404


def test_legacy_browser_routes(gw, site):
    r = post(gw, "/v1/browser/interactions/content", url=f"{site}/article")
    assert r.headers["Deprecation"] == "true"
    assert "Main Heading" in r.json()["readable_content"]["content"]
    r = post(gw, "/v1/browser/interactions/navigate", url=f"{site}/article")
    assert r.headers["Deprecation"] == "true" and r.json()["title"] == "Test Article"


def test_crashed_browser_is_relaunched(gw, site):
    assert post(gw, "/v1/browser/navigate", url=f"{site}/article").status_code == 200
    chromes = [p for p in descendants(gw.proc.pid) if b"--headless" in _cmdline(p) and b"--type=" not in _cmdline(p)]
    assert chromes, "no browser process found"
    for p in chromes:
        os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in chromes) and time.monotonic() < deadline:
        time.sleep(0.05)
    r = post(gw, "/v1/browser/navigate", url=f"{site}/article")
    if r.status_code == 503:  # the crash was noticed mid-request: the next one relaunches
        r = post(gw, "/v1/browser/navigate", url=f"{site}/article")
    assert r.status_code == 200 and r.json()["title"] == "Test Article"
    assert httpx.get(gw.url + "/health").json()["browser"] == "running"


def _cmdline(pid: int) -> bytes:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""
