"""Browser benchmark: the first call's cold start, then content of a local page with a warm browser.

    python tests/bench/browser.py

Target (issue #4): warm content p50 under 150 ms.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PAGE = (
    "<html><head><title>bench</title></head><body>"
    + "".join(f"<p>paragraph {i} with <a href='/{i}'>a link</a></p>" for i in range(200))
    + "</body></html>"
).encode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)


def main() -> None:
    from tests.conftest import start_gateway

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    gw = start_gateway(Path(tempfile.mkdtemp()), "--pool-size", "0")
    c = gw.client()
    try:
        t0 = time.perf_counter()
        r = c.post("/v1/browser/content", json={"url": url})
        cold = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, r.text
        rows = {}
        for fmt in ("text", "markdown", "links", "html"):
            samples = []
            for _ in range(30):
                t0 = time.perf_counter()
                c.post("/v1/browser/content", json={"url": url, "format": fmt})
                samples.append((time.perf_counter() - t0) * 1000)
            rows[fmt] = samples
    finally:
        gw.stop()
        server.shutdown()
    print(f"{'first call (cold start)':28} {cold:8.1f} ms")
    for fmt, s in rows.items():
        print(f"{'warm content, ' + fmt:28} {statistics.median(s):8.1f} ms p50  {max(s):8.1f} ms max")
    p50 = statistics.median(rows["text"])
    print(f"\nwarm content p50 {p50:.1f} ms, target < 150 ms: {'ok' if p50 < 150 else 'MISSED'}")


if __name__ == "__main__":
    main()
