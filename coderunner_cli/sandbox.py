"""Sandbox lifecycle apart from starting one: its container name, its health, `status`, `ls`,
`down` and `build`.

`up` is sandbox_up.py (and what it starts with, sandbox_wanted.py). Functions return plain
dataclasses; the commands render them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths, state
from .errors import CoderunnerError, SandboxNotRunning, UsageError
from .runtimes import Runtime, get, resolve


def sandbox_name(sandbox: str | None = None) -> str:
    """The container's name: `coderunner` (or $CODERUNNER_NAME) for the default sandbox, `coderunner-NAME`
    (or `$CODERUNNER_NAME-NAME`) for the sandbox NAME."""
    base = os.environ.get("CODERUNNER_NAME") or "coderunner"
    sandbox = sandbox or paths.sandbox()
    return base if sandbox == paths.DEFAULT_SANDBOX else f"{base}-{sandbox}"


@dataclass
class StatusReport:
    running: bool
    runtime: str | None = None
    isolation: str | None = None
    state: str = "missing"
    url: str | None = None
    healthy: bool = False
    token: str | None = None  # accepted | refused (when the gateway answers)
    version: str | None = None
    sessions: int | None = None
    warm_kernels: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def image_context() -> Path | None:
    """The image's build context: $CODERUNNER_IMAGE_CONTEXT, or container_image/ of the source
    checkout the CLI runs from or was installed from (``pip install ./``, as scripts/setup does,
    records the folder in the install's ``direct_url.json``, PEP 610)."""
    env = os.environ.get("CODERUNNER_IMAGE_CONTEXT")
    if env:
        return Path(env)
    for checkout in (Path(__file__).resolve().parent.parent, _installed_from()):
        if checkout is not None and (checkout / "container_image" / "Dockerfile").is_file():
            return checkout / "container_image"
    return None


def _installed_from() -> Path | None:
    """The local folder this CLI was pip-installed from, if it was (PEP 610)."""
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    try:
        info = json.loads(metadata.distribution("coderunner").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        return None
    url = urlparse(info.get("url", ""))
    return Path(unquote(url.path)) if url.scheme == "file" and "dir_info" in info else None


def build(
    runtime_name: str | None,
    tag: str,
    context: Path | None,
    build_args: dict[str, str],
    ca_certs: list[Path],
    timeout: float = 600,
) -> str:
    import shutil

    runtime, _ = resolve(runtime_name)
    context = context or image_context()
    if context is None or not (context / "Dockerfile").is_file():
        raise UsageError(
            "no build context: pass --context DIR (the container_image/ folder of coderunner's "
            "sources), or use a published image with `coderunner up --image REF`"
        )
    certs = context / "build" / "certs"
    for cert in ca_certs:
        if not cert.is_file():
            raise UsageError(f"--ca-cert {cert}: no such file")
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(cert, certs / (cert.stem + ".crt"))
    runtime.prepare(timeout)
    runtime.build(tag, str(context), build_args)
    return runtime.name


def wait_healthy(url: str, token: str | None, timeout: float, *, raise_: bool = True) -> bool:
    from .client import CodeRunner
    from .errors import CoderunnerError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with CodeRunner(url, token, timeout=5) as cr:
                cr.health()
                cr.sessions()  # the token works too
            return True
        except CoderunnerError as exc:
            last = exc
            time.sleep(0.1)
    if raise_:
        raise SandboxNotRunning(
            f"the gateway at {url} did not become healthy within {timeout:g}s ({last}); see `coderunner logs`"
        )
    return False


def down(remove: bool = False, timeout: float = 10) -> str:
    """Stop the sandbox (and with ``remove`` delete it and its secrets); what happened, for the user."""
    with state.lock(timeout + 60):
        current = state.load()
        if current is None:
            if remove:
                state.clear()  # secrets a crashed `up` may have left
            return "no sandbox is running: nothing to stop"
        runtime = get(current.runtime)
        running = runtime.status(current.name).state == "running"
        if running:
            runtime.stop(current.name, timeout)
        if remove:
            runtime.remove(current.name)
            state.clear()
            return "sandbox removed (with its secrets)"
        return "sandbox stopped" if running else "the sandbox is not running: nothing to stop"


def status() -> StatusReport:
    current = state.load()
    if current is None:
        name = paths.sandbox()
        up = "`coderunner up`" if name == paths.DEFAULT_SANDBOX else f"`coderunner up --name {name}`"
        return StatusReport(False, detail=f"no sandbox: run {up}")
    runtime: Runtime = get(current.runtime)
    st = runtime.status(current.name)
    report = StatusReport(False, runtime.name, runtime.isolation, st.state, current.url, detail=st.detail)
    if st.state == "running":
        from .client import CodeRunner
        from .errors import AuthError, CoderunnerError

        try:
            with CodeRunner(current.url, current.token, timeout=5) as cr:
                health = cr.health()
                cr.sessions()
            report.healthy = True
            report.token = "accepted"
            report.version = health.get("version")
            report.sessions = health.get("sessions")
            report.warm_kernels = health.get("warm_kernels")
        except AuthError:
            report.token = "refused"
            report.detail = (
                f"the gateway refuses the token in {paths.token_file()}: run `coderunner up` "
                "to start the sandbox again with a fresh one"
            )
        except CoderunnerError as exc:
            report.detail = str(exc)
    report.running = report.healthy
    return report


@dataclass
class SandboxRow:
    name: str
    runtime: str
    state: str
    url: str | None
    created: str | None
    options: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def listing() -> list[SandboxRow]:
    """Every sandbox this state dir knows, with the state its runtime reports (`coderunner ls`)."""
    rows = []
    for name in state.names():
        current = state.load(name)
        if current is None:
            continue
        try:
            st = get(current.runtime, name).status(current.name).state
        except CoderunnerError as exc:  # its runtime is not installed any more
            st = f"unknown ({exc.message})"
        created = (
            time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(current.created_at)) if current.created_at else None
        )
        rows.append(
            SandboxRow(name, current.runtime, st, current.url if st == "running" else None, created, current.options)
        )
    return rows


def require_running() -> tuple[state.SandboxState, Runtime]:
    current = state.load()
    if current is None:
        raise SandboxNotRunning.named()
    return current, get(current.runtime)
