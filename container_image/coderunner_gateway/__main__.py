"""``coderunner-gateway``: start the gateway.

    coderunner-gateway --host 127.0.0.1 --port 8222 --workspace DIR

The token comes from ``--token-file`` or ``CODERUNNER_TOKEN`` (never from
argv, which other users can read in ``ps``). ``--port 0`` picks a free port;
``--ready-file`` receives ``{"url": ..., "pid": ...}`` once it listens.

Over ~300 lines because most of it is the flat declaration of the options (one
``add_argument`` with its help each); serving is in :mod:`.serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile

from . import __version__
from .jail import MODES, IsolationUnavailable, Jail, JailConfig, make_jail, no_new_privs_and_undumpable
from .settings import MiB, Settings, read_env_file

log = logging.getLogger("coderunner_gateway")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coderunner-gateway", description="Run the coderunner gateway.")
    _listen_options(p)
    _isolation_options(p)
    _code_env_options(p)
    _pool_options(p)
    _limit_options(p)
    _skills_browser_options(p)
    _http_options(p)
    _service_options(p)
    return p


def _listen_options(p: argparse.ArgumentParser) -> None:
    """Options: where it listens, its workspace, and what it is handed at start (token, environment)."""
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


def _isolation_options(p: argparse.ArgumentParser) -> None:
    """Options: how code is kept apart (--isolation and what each mode needs)."""
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


def _code_env_options(p: argparse.ArgumentParser) -> None:
    """Options: the environment the code gets."""
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


def _pool_options(p: argparse.ArgumentParser) -> None:
    """Options: warm kernels and interpreters."""
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


def _limit_options(p: argparse.ArgumentParser) -> None:
    """Options: sessions, sizes and timeouts."""
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


def _skills_browser_options(p: argparse.ArgumentParser) -> None:
    """Options: skills and the browser."""
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


def _http_options(p: argparse.ArgumentParser) -> None:
    """Options: connections (before auth) and MCP sessions."""
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


def _service_options(p: argparse.ArgumentParser) -> None:
    """Options: ready file, logging, version."""
    p.add_argument("--ready-file", help="write {url, pid} here once listening")
    p.add_argument("--log-level", default=os.environ.get("CODERUNNER_LOG_LEVEL", "info"))
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--version", action="version", version=f"coderunner-gateway {__version__}")


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
    extra_env = _extra_env(args)
    runtime_dir = _runtime_dir(workspace)
    jail = _jail(args, workspace, runtime_dir)
    log.info("code runs isolated: %s", jail.describe())
    settings = _settings(args, workspace, runtime_dir, jail, extra_env)
    os.chmod(settings.runtime_dir, 0o711 if jail.name == "setid" else 0o700)
    if settings.token is None:
        log.warning("no token set (CODERUNNER_TOKEN or --token-file): the API is open to anyone who can reach it")
    from .serve import serve

    try:
        asyncio.run(serve(args, settings))
    finally:
        shutil.rmtree(settings.runtime_dir, ignore_errors=True)


def _extra_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment added to the code's: --env-fd, then --pass-env, then each --env-file."""
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
    return extra_env


def _jail(args: argparse.Namespace, workspace: str, runtime_dir: str) -> Jail:
    try:
        return make_jail(
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


def _settings(
    args: argparse.Namespace, workspace: str, runtime_dir: str, jail: Jail, extra_env: dict[str, str]
) -> Settings:
    from .kernel_pool import default_pool_max

    return Settings(
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


if __name__ == "__main__":
    main()
