"""HEALTHCHECK: GET /health over TCP 8222, or over the unix socket when started with --no-network."""

import http.client
import os
import socket
import sys

SOCK = "/run/coderunner/run/gateway.sock"


class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(SOCK)


conn = (
    UnixConnection("localhost", timeout=3)
    if os.path.exists(SOCK)
    else http.client.HTTPConnection("127.0.0.1", 8222, timeout=3)
)
try:
    conn.request("GET", "/health")
    sys.exit(0 if conn.getresponse().status == 200 else 1)
except OSError:
    sys.exit(1)
