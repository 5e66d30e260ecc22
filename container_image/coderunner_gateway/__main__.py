"""``coderunner-gateway``: start the gateway.

    coderunner-gateway --host 127.0.0.1 --port 8222 --workspace DIR

The token comes from ``--token-file`` or ``CODERUNNER_TOKEN`` (never from
argv, which other users can read in ``ps``). ``--port 0`` picks a free port;
``--ready-file`` receives ``{"url": ..., "pid": ...}`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile

from . import __version__
from .jail import MODES, IsolationUnavailable, JailConfig, make_jail, no_new_privs_and_undumpable
from .settings import MiB, Settings, read_env_file

log = logging.getLogger("coderunner_gateway")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coderunner-gateway", description="Run the coderunner gateway.")
    p.add_argument(
        "--host",
        default=os.environ.get("CODERUNNER_HOST", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1; the container image uses 0.0.0.0)",
    )
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("CODERUNNER_PORT", "8222")), help="TCP port (0 = any free port)"
    )
    p.add_argument("--uds", help="listen on this unix socket instead of TCP")
    p.add_argument(
        "--workspace",
        default=os.environ.get("CODERUNNER_WORKSPACE") or os.getcwd(),
        help="directory code runs in (default: $CODERUNNER_WORKSPACE or the current directory)",
    )
    p.add_argument("--token-file", help="read the API token from this file (else $CODERUNNER_TOKEN)")
    p.add_argument("--token-fd", type=int, help="read the API token from this inherited file descriptor")
    p.add_argument("--env-fd", type=int, help="read KEY=VALUE lines (as --env-file) from this inherited descriptor")
    p.add_argument(
        "--isolation",
        choices=MODES,
        default=os.environ.get("CODERUNNER_ISOLATION", "auto"),
        help="how code is kept from the gateway and from other sessions: bwrap (a nested "
        "bubblewrap sandbox per script and kernel), setid (gateway as root, code as --code-uid "
        "with a group per session), none, or auto (bwrap, else setid when root; the default)",
    )
    p.add_argument(
        "--code-uid",
        type=int,
        help="the uid code runs as when the gateway is root (setid: default 1000; bwrap: default 65534, nobody)",
    )
    p.add_argument("--code-gid", type=int, help="its group (setid: the workspace's group; default: as --code-uid)")
    p.add_argument("--base-home", help="a home whose entries (mounted credentials) each session's home links to")
    p.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="PATH",
        help="bwrap: a path (a user mount) code sees read-write (repeatable)",
    )
    p.add_argument(
        "--share-ro", action="append", default=[], metavar="PATH", help="bwrap: a path code sees read-only (repeatable)"
    )
    p.add_argument(
        "--cell-tmp-size",
        type=int,
        default=1024,
        metavar="MiB",
        help="bwrap: size of each script's and session's private /tmp (default 1024 MiB)",
    )
    p.add_argument("--socket-owner", metavar="UID:GID", help="chown the --uds socket (the host user's ids)")
    p.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="hand this variable of the gateway's environment to the code (repeatable; "
        "docker/podman/apple pass the config's keys as `-e NAME`)",
    )
    p.add_argument(
        "--env-file",
        action="append",
        default=[],
        help="KEY=VALUE lines added to the environment of the code it runs (repeatable)",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=2,
        help="warm python kernels kept ready (default 2; 0: no pool, each session starts its kernel)",
    )
    p.add_argument(
        "--pool-max",
        type=int,
        default=None,
        help="warm kernels the pool may grow to when new sessions drain it (default: 4 a core, "
        "at most an eighth of the memory at 100 MiB each, at most 16)",
    )
    p.add_argument(
        "--pool-idle",
        type=float,
        default=120.0,
        help="seconds without a new session after which a grown pool halves, down to --pool-size (default 120)",
    )
    p.add_argument(
        "--script-pool",
        type=int,
        default=2,
        help="python interpreters kept started for scripts, each in its own cell and used once "
        "(default 2; 0: each script starts its own)",
    )
    p.add_argument("--max-sessions", type=int, default=32, help="live sessions allowed (default 32)")
    p.add_argument("--session-ttl", type=float, default=3600.0, help="seconds an idle session lives (default 3600)")
    p.add_argument(
        "--max-output-bytes",
        type=int,
        default=16 * MiB,
        help="output kept per aggregated (JSON) execution (default 16 MiB)",
    )
    p.add_argument("--max-request-bytes", type=int, default=32 * MiB, help="largest request body (default 32 MiB)")
    p.add_argument("--default-timeout", type=float, help="timeout for executions that give none (default: none)")
    p.add_argument(
        "--skills-dir",
        default=os.environ.get("CODERUNNER_SKILLS_DIR"),
        help="public skills (default: the ones shipped with the gateway)",
    )
    p.add_argument(
        "--user-skills-dir",
        default=os.environ.get("CODERUNNER_USER_SKILLS_DIR"),
        help="user skills; .zip files there are unpacked safely",
    )
    p.add_argument(
        "--chromium",
        default=os.environ.get("CODERUNNER_CHROMIUM"),
        help="Chromium executable for /v1/browser (default: chromium on PATH)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may take to send a request's headers (default 10)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="open connections at once; more are answered 503 and closed (default 256)",
    )
    p.add_argument(
        "--mcp-idle-timeout",
        type=float,
        default=600.0,
        help="seconds an idle MCP session (and its kernel) lives (default 600)",
    )
    p.add_argument("--ready-file", help="write {url, pid} here once listening")
    p.add_argument("--log-level", default=os.environ.get("CODERUNNER_LOG_LEVEL", "info"))
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--version", action="version", version=f"coderunner-gateway {__version__}")
    return p


def _token(args: argparse.Namespace) -> str | None:
    token = None
    if args.token_fd is not None:
        with os.fdopen(args.token_fd, "rb") as f:
            token = f.read().decode().strip()
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            sys.exit(f"coderunner-gateway: cannot read --token-file: {exc.strerror}: {args.token_file}")
    return token or None


def _reexec_without_token(argv: list[str]) -> None:
    """``os.environ.pop`` leaves the token in ``/proc/PID/environ`` (the kernel keeps the
    first environment): start again without it, the token on a pipe."""
    token = os.environ.get("CODERUNNER_TOKEN")
    if token is None:
        return
    r, w = os.pipe()
    os.write(w, token.encode())
    os.close(w)
    os.set_inheritable(r, True)
    env = {k: v for k, v in os.environ.items() if k != "CODERUNNER_TOKEN"}
    os.execve(sys.executable, [sys.executable, "-m", "coderunner_gateway", *argv, "--token-fd", str(r)], env)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    _reexec_without_token(argv)
    no_new_privs_and_undumpable()
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    workspace = os.path.abspath(args.workspace)
    if not os.path.isdir(workspace):
        sys.exit(f"coderunner-gateway: workspace {workspace} is not a directory: create it or pass --workspace")
    extra_env: dict[str, str] = {}
    if args.env_fd is not None:  # handed over by the runtime; read, then closed so nothing inherits it
        with os.fdopen(args.env_fd, "rb") as f, tempfile.NamedTemporaryFile("wb", prefix="coderunner-env-") as tmp:
            tmp.write(f.read())
            tmp.flush()
            try:
                extra_env.update(read_env_file(tmp.name))
            except ValueError as exc:
                sys.exit(f"coderunner-gateway: --env-fd {args.env_fd}: {exc}")
    for name in args.pass_env:
        if name in os.environ and name != "CODERUNNER_TOKEN":
            extra_env[name] = os.environ[name]
    for path in args.env_file:
        try:
            extra_env.update(read_env_file(path))
        except OSError as exc:
            sys.exit(f"coderunner-gateway: cannot read --env-file {path}: {exc.strerror}")
        except ValueError as exc:
            sys.exit(f"coderunner-gateway: {exc}")
    runtime_dir = _runtime_dir(workspace)
    try:
        jail = make_jail(
            JailConfig(
                mode=args.isolation,
                runtime_dir=runtime_dir,
                workspace=workspace,
                code_uid=args.code_uid,
                code_gid=args.code_gid,
                base_home=args.base_home,
                shares=args.share,
                shares_ro=[p for p in [*args.share_ro, args.user_skills_dir, os.environ.get("SSH_AUTH_SOCK")] if p],
                tmp_size=max(1, args.cell_tmp_size) * MiB,
            )
        )
    except (IsolationUnavailable, OSError) as exc:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        sys.exit(f"coderunner-gateway: {exc}")
    log.info("code runs isolated: %s", jail.describe())
    from .kernel_pool import default_pool_max

    settings = Settings(
        runtime_dir=runtime_dir,
        jail=jail,
        extra_env=extra_env,
        workspace=workspace,
        token=_token(args),
        pool_size=max(0, args.pool_size),
        pool_max=max(0, args.pool_max) if args.pool_max is not None else default_pool_max(max(0, args.pool_size)),
        pool_idle=max(0.1, args.pool_idle),
        script_pool=max(0, args.script_pool),
        max_sessions=max(1, args.max_sessions),
        session_ttl=args.session_ttl,
        max_output_bytes=args.max_output_bytes,
        max_request_bytes=args.max_request_bytes,
        default_timeout=args.default_timeout,
        skills_dir=args.skills_dir,
        user_skills_dir=args.user_skills_dir,
        chromium=args.chromium,
    )
    os.chmod(settings.runtime_dir, 0o711 if jail.name == "setid" else 0o700)
    if settings.token is None:
        log.warning("no token set (CODERUNNER_TOKEN or --token-file): the API is open to anyone who can reach it")
    try:
        asyncio.run(_serve(args, settings))
    finally:
        shutil.rmtree(settings.runtime_dir, ignore_errors=True)


async def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from .app import create_app
    from .http_guard import MAX_HEADER_BYTES, guarded_protocol

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
        # h11 with header size, header time and connection caps, all before auth
        http=guarded_protocol(args.header_timeout, max(1, args.max_connections)),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:  # type: ignore[override]
            # end running code first, so open streams finish with "died"
            # instead of holding the graceful shutdown open
            if sig in (signal.SIGTERM, signal.SIGINT) and not self.should_exit:
                loop.call_soon_threadsafe(lambda: closing.add(asyncio.ensure_future(gateway.close())))
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn re-raises the signal once served, killing the process
            # before our cleanup runs; a clean shutdown exits 0 instead
            with super().capture_signals():
                yield
                getattr(self, "_captured_signals", []).clear()

    loop = asyncio.get_running_loop()
    closing: set[asyncio.Future[None]] = set()  # the close a signal started (the loop keeps only weak references)
    server = Server(config)
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


def _write_ready_file(path: str, url: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"url": url, "pid": os.getpid()}, f)
    os.replace(tmp, path)


def _runtime_dir(workspace: str) -> str:
    """The gateway's private dir (cells, kernel files): in $TMPDIR or /tmp, never in the
    workspace that code shares (tempfile would fall back to the current directory)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    real, ws = os.path.realpath(base), os.path.realpath(workspace)
    if real == ws or real.startswith(ws + os.sep) or not os.access(base, os.W_OK | os.X_OK):
        sys.exit(
            f"coderunner-gateway: cannot make its private dir in {base} (not writable, or inside the "
            "workspace): set TMPDIR to a private writable directory"
        )
    return tempfile.mkdtemp(prefix="coderunner-gw-", dir=base)


def _socket_dir(path: str) -> None:
    """Create the socket's directory (Apple's --publish-socket creates none in the guest);
    as root, close the root-owned directories above it, so code (never root) cannot reach it."""
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        for d in (parent, os.path.dirname(parent)):
            if d not in ("/", "/run", "/tmp", "/var/run") and os.stat(d).st_uid == 0:
                os.chmod(d, 0o700)


if __name__ == "__main__":
    main()
