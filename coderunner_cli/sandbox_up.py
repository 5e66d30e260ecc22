"""`coderunner up`: reuse, resume, recreate or start the sandbox, under the state lock.

What it starts the sandbox with is sandbox_wanted.py's; health and the container's name, sandbox.py's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import config, paths, state
from .errors import UsageError
from .runtimes import ContainerSpec, Runtime, get, resolve
from .runtimes.base import DEFAULT_IMAGE
from .sandbox import image_context, sandbox_name, wait_healthy
from .sandbox_wanted import OPTION_FLAGS, UpOptions, Wanted, changed, wanted_for

__all__ = ["Progress", "UpOptions", "UpResult", "up"]


@dataclass
class UpResult:
    url: str
    runtime: str
    source: str
    action: str  # started | resumed | already running | recreated
    isolation: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Progress = Callable[[str], object]


def up(opts: UpOptions, progress: Progress | None = None) -> UpResult:
    say = progress or (lambda _msg: None)
    with state.lock(opts.timeout, say):
        return _up(opts, say)


@dataclass
class _Start:
    """Why `up` starts a new sandbox, for its result."""

    action: str = "started"  # started | recreated | restarted
    notes: list[str] = field(default_factory=list)


def _up(opts: UpOptions, say: Progress) -> UpResult:
    current = state.load()
    same_runtime = current is not None and opts.runtime in (None, current.runtime)
    wanted = wanted_for(opts, current.options if current is not None and same_runtime else None)
    start = _Start()
    if current is not None and same_runtime:
        if reused := _reuse(current, wanted, opts, say, start):
            return reused
    elif current is not None:
        _refuse_beside(current, opts.runtime)
    runtime, source = (get(current.runtime), "state") if current and opts.runtime is None else resolve(opts.runtime)
    warnings = []
    if not runtime.enforces_limits and (wanted.cpus or wanted.memory):
        warnings.append(
            f"the {runtime.name} runtime cannot enforce --cpus/--memory (no cgroups); use docker, podman or apple"
        )
    say(f"preparing {runtime.name}")
    runtime.prepare(opts.timeout)
    _ensure_image(runtime, wanted.image, say)
    name = sandbox_name()
    if runtime.status(name).state != "missing":
        _end(runtime, name, 10)  # a sandbox we have no token for, or a stopped one: replace it
    token, env_file = _write_secrets(wanted.env)
    say(f"starting the sandbox ({runtime.name})")
    url = runtime.create(_spec(name, wanted, env_file))
    _record(runtime, name, url, wanted)
    say("waiting for the gateway")
    wait_healthy(url, token, 120)
    return UpResult(url, runtime.name, source, start.action, runtime.isolation, warnings, start.notes)


def _reuse(
    current: state.SandboxState, wanted: Wanted, opts: UpOptions, say: Progress, start: _Start
) -> UpResult | None:
    """The sandbox that is there, when it will do (running, or resumed); else it is ended
    (or left stopped) and ``start`` says why a new one starts."""
    runtime = get(current.runtime)
    st = runtime.status(current.name)
    changes = changed(current.options, wanted.record)
    what = ", ".join(OPTION_FLAGS[c] for c in changes)
    if st.state == "running":
        if wait_healthy(current.url, current.token, 5, raise_=False):
            if not changes and not opts.recreate:
                return UpResult(current.url, runtime.name, "state", "already running", runtime.isolation)
            _refuse_ending_sessions(current, what, opts.recreate)
            say("ending the sandbox to recreate it")
            start.notes.append(f"recreating the sandbox for {what or '--recreate'} (the workspace is kept)")
            start.action = "recreated"
        else:
            why = _why_unhealthy(current)
            say(f"ending the sandbox that {why}")
            start.notes.append(f"the sandbox {why}: ended it and started a new one (the workspace is kept)")
            start.action = "restarted"
        _end(runtime, current.name, 10)
    elif st.state == "stopped" and runtime.resumable:
        if not changes and not opts.recreate:
            return _resume(runtime, current, say)
        start.notes.append(f"recreating the stopped sandbox for {what or '--recreate'} (the workspace is kept)")
        start.action = "recreated"
    return None


def _end(runtime: Runtime, name: str, timeout: float) -> None:
    """End a sandbox for good, keeping its workspace."""
    runtime.stop(name, timeout)
    # a stopped sandbox of a resumable runtime still exists; one that cannot resume leaves only
    # its workspace behind, which its `remove` would delete
    if runtime.resumable:
        runtime.remove(name)


def _refuse_ending_sessions(current: state.SandboxState, what: str, recreate: bool) -> None:
    live = _live_sessions(current)
    if live and not recreate:
        raise UsageError(
            f"the sandbox has {live} live session{'s' if live > 1 else ''} that recreating it "
            f"for {what} would end: add --recreate to recreate it anyway (the workspace is kept)"
        )


def _refuse_beside(current: state.SandboxState, runtime: str | None) -> None:
    """One state dir has one sandbox: another runtime's must be down first."""
    if get(current.runtime).status(current.name).state == "running":
        raise UsageError(
            f"a {current.runtime} sandbox is running: stop it with `coderunner down` "
            f"before starting one with --runtime {runtime}"
        )


def _resume(runtime: Runtime, current: state.SandboxState, say: Progress) -> UpResult:
    say(f"resuming the {runtime.name} sandbox")
    url = runtime.resume(current.name)
    current.url = url
    state.save(current)
    wait_healthy(url, current.token, 120)
    return UpResult(url, runtime.name, "state", "resumed", runtime.isolation)


def _ensure_image(runtime: Runtime, image: str, say: Progress) -> None:
    """The default image is built from a source checkout when missing; any other is pulled."""
    if not runtime.needs_image or runtime.has_image(image):
        return
    context = image_context()
    if image == DEFAULT_IMAGE and context is not None:
        say(f"building {image} (first time only; progress on stderr)")
        runtime.build(image, str(context), {})
    else:
        say(f"pulling {image}")
        runtime.pull(image)


def _write_secrets(env: dict[str, str]) -> tuple[str, Path | None]:
    """A fresh token, and the sandbox's environment (if any), 0600 in the secrets dir."""
    token = secrets.token_urlsafe(32)
    paths.ensure_private_dir(paths.secrets_dir())
    paths.write_private(paths.token_file(), token + "\n")
    if not env:
        paths.env_file().unlink(missing_ok=True)
        return token, None
    paths.write_private(paths.env_file(), config.dumps(env))
    return token, paths.env_file()


def _spec(name: str, wanted: Wanted, env_file: Path | None) -> ContainerSpec:
    wanted.workspace.mkdir(parents=True, exist_ok=True)
    return ContainerSpec(
        name=name,
        image=wanted.image,
        secrets_dir=paths.secrets_dir(),
        env_file=env_file,
        workspace=wanted.workspace,
        run_dir=paths.ensure_private_dir(paths.run_dir()),
        cpus=wanted.cpus,
        memory=wanted.memory,
        skills_dir=_mkdir(paths.skills_dir()),
        mounts=wanted.mounts,
        ssh_agent=wanted.ssh_agent,
        network=wanted.network,
    )


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record(runtime: Runtime, name: str, url: str, wanted: Wanted) -> None:
    state.save(
        state.SandboxState(
            runtime=runtime.name,
            name=name,
            url=url,
            image=wanted.image,
            created_at=time.time(),
            options=wanted.record,
            sandbox=paths.sandbox(),
        )
    )


def _why_unhealthy(current: state.SandboxState) -> str:
    from .client import CodeRunner
    from .errors import AuthError, CoderunnerError

    try:
        with CodeRunner(current.url, current.token, timeout=2) as cr:
            cr.sessions()
    except AuthError:
        return "refused its token"
    except CoderunnerError:
        pass
    return "did not answer"


def _live_sessions(current: state.SandboxState) -> int:
    from .client import CodeRunner

    with CodeRunner(current.url, current.token, timeout=5) as cr:
        return len(cr.sessions())
