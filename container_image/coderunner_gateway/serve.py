"""Serve the app: listen (TCP or a unix socket), run uvicorn with the gateway's
HTTP guards, announce the URL, and close running code first on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys

import uvicorn

from . import __version__
from .gateway import Gateway
from .settings import Settings

log = logging.getLogger("coderunner_gateway")


def _watch_children_by_pidfd() -> None:
    """Python 3.11's asyncio waits for each child process in a thread of its own (started per
    process: ~1 ms of the gateway's CPU per script); a pidfd on the loop does it without one,
    as 3.12 does by itself."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel before 5.3, or a seccomp filter that refuses it
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)


async def serve(args: argparse.Namespace, settings: Settings) -> None:
    from .app import create_app
    from .heap import heap
    from .http_guard import guarded_protocol

    heap.tune()
    _watch_children_by_pidfd()

    if settings.token is None and not args.uds:
        sys.exit(
            "coderunner-gateway: refusing to listen on TCP without a token: set CODERUNNER_TOKEN or "
            "--token-file, or listen on a unix socket with --uds"
        )
    app, gateway = create_app(settings, mcp_idle_timeout=args.mcp_idle_timeout)
    config = uvicorn.Config(
        app,
        log_level=args.log_level.lower(),
        access_log=args.access_log,
        lifespan="on",
        timeout_graceful_shutdown=10,
        proxy_headers=False,
        server_header=False,
        # httptools with header size, header time and connection caps, all before auth
        http=guarded_protocol(args.header_timeout, max(1, args.max_connections)),
    )
    server = _Server(config, gateway, asyncio.get_running_loop())
    sock, url = _listen(args)

    async def announce() -> None:
        while not server.started and not server.should_exit:
            await asyncio.sleep(0.01)
        if server.started:
            log.info("coderunner-gateway %s listening on %s (workspace %s)", __version__, url, settings.workspace)
            if args.ready_file:
                await asyncio.to_thread(_write_ready_file, args.ready_file, url)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
        await gateway.close()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(config)
        self._gateway = gateway
        self._loop = loop
        self._closing: set[asyncio.Future[None]] = (
            set()
        )  # the close a signal started (the loop keeps only weak references)

    def handle_exit(self, sig: int, frame) -> None:  # type: ignore[override]
        # end running code first, so open streams finish with "died"
        # instead of holding the graceful shutdown open
        if sig in (signal.SIGTERM, signal.SIGINT) and not self.should_exit:
            self._loop.call_soon_threadsafe(lambda: self._closing.add(asyncio.ensure_future(self._gateway.close())))
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        # uvicorn re-raises the signal once served, killing the process
        # before our cleanup runs; a clean shutdown exits 0 instead
        with super().capture_signals():
            yield
            getattr(self, "_captured_signals", []).clear()


def _listen(args: argparse.Namespace) -> tuple[socket.socket, str]:
    """The listening socket (--uds, else --host/--port) and the URL it answers on."""
    if args.uds:
        _socket_dir(args.uds)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.uds)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(args.uds)
        os.chmod(args.uds, 0o600)
        if args.socket_owner:
            uid, _, gid = args.socket_owner.partition(":")
            os.chown(args.uds, int(uid), int(gid or uid))
        url = f"unix:{args.uds}"
    else:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit it: without it, a response written as
        # headers then body waits ~40 ms on Nagle + delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((args.host, args.port))
        except OSError as exc:
            sys.exit(
                f"coderunner-gateway: cannot listen on {args.host}:{args.port}: {exc.strerror} "
                "(is another gateway running? pick another --port, or 0 for any free port)"
            )
        host, port = sock.getsockname()[:2]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    sock.listen(128)
    sock.set_inheritable(False)
    return sock, url


def _write_ready_file(path: str, url: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"url": url, "pid": os.getpid()}, f)
    os.replace(tmp, path)


def _socket_dir(path: str) -> None:
    """Create the socket's directory (Apple's --publish-socket creates none in the guest);
    as root, close the root-owned directories above it, so code (never root) cannot reach it."""
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        for d in (parent, os.path.dirname(parent)):
            if d not in ("/", "/run", "/tmp", "/var/run") and os.stat(d).st_uid == 0:
                os.chmod(d, 0o700)
