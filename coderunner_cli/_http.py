"""One HTTP/1.1 request over a plain socket, its answer read as lines: the fast path's transport.

``http.client`` costs the CLI a fifth of its start-up (it imports ``email`` for its headers, and
``ssl``); one streamed ``POST /v1/execute`` to a gateway on loopback or a unix socket needs
neither. Only ``http://`` and ``unix:`` URLs: the caller takes anything else to the full client.
Failures raise the ``OSError`` that ``http.client`` would have met (a connection closed before
or during the answer is a ``ConnectionResetError``), so the client's :func:`_reason` words them
alike.

Start-up is what this saves, so it imports the C halves of the standard library only: ``_socket``
(``socket`` pulls in ``enum`` and ``selectors``) and ``_json`` (``json`` pulls in ``re``):
:func:`dumps` and :func:`loads` give ``json.dumps``'s exact text and ``json.loads``'s values for what
the fast path sends and reads, and fall back to ``json`` where ``_json`` is missing.
"""

from __future__ import annotations

import _socket as socket

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, Literal, TypeAlias

    # (``"unix"``, path) or (``"tcp"``, (host, port)): where :func:`request` connects
    Where: TypeAlias = "tuple[Literal['unix'], str] | tuple[Literal['tcp'], tuple[str, int]]"

_string: Callable[[str], str] | None
# typeshed types make_scanner's argument as a make_scanner; it reads a json.JSONDecoder's fields
_make_scanner: Callable[[Any], Callable[[str, int], tuple[Any, int]]] | None
try:
    from _json import encode_basestring_ascii as _string
    from _json import make_scanner as _make_scanner
except ImportError:  # another Python: the module itself
    _string = _make_scanner = None


class _Context:  # what _json's scanner reads from a json.JSONDecoder (json.loads' defaults)
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo: dict = {}


_scan = _make_scanner(_Context()) if _make_scanner is not None else None


def loads(line: bytes) -> Any:
    """``json.loads(line)`` for one NDJSON line."""
    text = line.decode("utf-8", "surrogatepass").strip(" \t\n\r")
    if _scan is None:
        import json

        return json.loads(text)
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        import json

        return json.loads(text)  # raises json's own error
    return value


def dumps(body: dict) -> str:
    """``json.dumps(body)`` for a dict of str, int, float, bool, None and lists of str."""
    if _string is None:
        import json

        return json.dumps(body)

    def value(v) -> str:
        if isinstance(v, str):
            return _string(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if v is None or isinstance(v, bool):
            return {None: "null", True: "true", False: "false"}[v]
        if isinstance(v, int):
            return int.__repr__(v)
        if isinstance(v, float) and v == v and v not in (float("inf"), float("-inf")):
            return float.__repr__(v)
        import json

        return json.dumps(v)

    return "{" + ", ".join(f"{_string(k)}: {value(v)}" for k, v in body.items()) + "}"


class Closed(ConnectionResetError):
    """The gateway closed the connection before its answer was complete."""


class Response:
    def __init__(self, sock) -> None:
        self._sock = sock
        self._buf = b""
        self._eof = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunked = False
        self._left: int | None = None  # body bytes still to come (content-length or this chunk), None: to EOF
        self._done = False

    # raw reads ---------------------------------------------------------------
    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._sock.recv(65536)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _line(self) -> bytes:
        """A CRLF-ended line of the head or chunk framing (without it)."""
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[:i], self._buf[i + 1 :]
                return line.rstrip(b"\r")
            if len(self._buf) > 65536:
                raise Closed("a header line over 64 KiB")
            if not self._fill():
                raise Closed("the connection was closed")

    def _exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise Closed("the connection was closed")
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def read_head(self) -> None:
        try:
            status = self._line()
        except Closed:
            raise Closed("Remote end closed connection without response") from None
        parts = status.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise Closed(f"bad status line {status[:80]!r}")
        self.status = int(parts[1])
        while line := self._line():
            key, _, value = line.decode("latin-1").partition(":")
            self.headers[key.strip().lower()] = value.strip()
        if self.status in (204, 304) or 100 <= self.status < 200:
            self._done = True
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._chunked, self._left = True, 0
        elif "content-length" in self.headers:
            self._left = int(self.headers["content-length"])

    # the body ------------------------------------------------------------------
    def read1(self) -> bytes:
        """The next piece of the body as it arrives; b"" at its end."""
        if self._done:
            return b""
        if self._chunked:
            if self._left == 0:
                size = self._line().split(b";", 1)[0].strip()
                try:
                    self._left = int(size, 16)
                except ValueError:
                    raise Closed("bad chunk size") from None
                if self._left == 0:  # the last chunk: trailers, then a blank line
                    while self._line():
                        pass
                    self._done = True
                    return b""
            assert self._left is not None  # chunked: what is left of this chunk, never None
            if not self._buf and not self._fill():
                raise Closed("the connection was closed")
            data, self._buf = self._buf[: self._left], self._buf[self._left :]
            self._left -= len(data)
            if self._left == 0:
                self._exact(2)  # the CRLF after the chunk
            return data
        if self._left is None:  # to the end of the connection
            if not self._buf and not self._fill():
                self._done = True
                return b""
            data, self._buf = self._buf, b""
            return data
        if self._left == 0:
            self._done = True
            return b""
        if not self._buf and not self._fill():
            raise Closed("the connection was closed")
        data, self._buf = self._buf[: self._left], self._buf[self._left :]
        self._left -= len(data)
        return data

    def read(self) -> bytes:
        parts = []
        while data := self.read1():
            parts.append(data)
        return b"".join(parts)

    def lines(self) -> Iterator[bytes]:
        """The body's lines (with their newline) as each one is complete."""
        pending = b""
        while data := self.read1():
            pending += data
            if b"\n" in data:
                *whole, pending = pending.split(b"\n")
                for line in whole:
                    yield line + b"\n"
        if pending:
            yield pending


def address(url: str) -> Where | None:
    """(``"unix"``, path) or (``"tcp"``, (host, port)) for a URL this module speaks, else None."""
    if url.startswith("unix:"):
        return "unix", url[5:]
    if not url.startswith("http://"):
        return None
    hostport = url[7:].split("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep:
        host, port = hostport, "80"
    if not host or not port.isdigit() or "@" in host or "[" in host or ":" in host:
        return None
    return "tcp", (host, int(port))


def request(
    where: Where, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[socket.socket, Response]:
    """Send one request on a fresh connection to ``where`` (from :func:`address`) and read the
    answer's head. The caller closes the socket (closing it mid-stream stops a script)."""
    if where[0] == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(where[1])
        except BaseException:
            sock.close()
            raise
        host = "coderunner"
    else:
        addr = where[1]
        host = addr[0]
        if host.replace(".", "").isdigit():  # an IPv4 address (the gateway's): no resolver, no idna codec
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.connect(addr)
            except BaseException:
                sock.close()
                raise
        else:
            import socket as full

            sock = full.create_connection(addr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host = f"{addr[0]}:{addr[1]}"
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        resp = Response(sock)
        resp.read_head()
    except BaseException:
        sock.close()
        raise
    return sock, resp
