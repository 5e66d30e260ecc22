"""Sandbox lifecycle: the core that `up`, `down` and `status` call.

Functions return plain dataclasses; the commands render them.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, paths, state
from .errors import CoderunnerError, SandboxNotRunning, UsageError
from .runtimes import ContainerSpec, Mount, Runtime, get, resolve
from .runtimes.base import DEFAULT_IMAGE, credential_mounts


def sandbox_name(sandbox: str | None = None) -> str:
    """The container's name: `coderunner` (or $CODERUNNER_NAME) for the default sandbox, `coderunner-NAME`
    (or `$CODERUNNER_NAME-NAME`) for the sandbox NAME."""
    base = os.environ.get("CODERUNNER_NAME") or "coderunner"
    sandbox = sandbox or paths.sandbox()
    return base if sandbox == paths.DEFAULT_SANDBOX else f"{base}-{sandbox}"


@dataclass
class UpOptions:
    runtime: str | None = None
    image: str = DEFAULT_IMAGE
    cpus: float | None = None
    memory: str | None = None
    with_ssh_agent: bool = False
    with_credentials: bool = False
    env_files: list[Path] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    network: bool = True
    timeout: float = 600
    workspace: Path | None = None
    recreate: bool = False  # recreate a running sandbox even when that ends live sessions
    given: set[str] | None = None  # the fields the user gave; the others keep what the sandbox has (None: all given)


@dataclass
class UpResult:
    url: str
    runtime: str
    source: str
    action: str  # started | resumed | already running | recreated
    isolation: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


def sandbox_env(env_files: list[Path]) -> dict[str, str]:
    """What the code sees: the config's entries (not CODERUNNER_* settings), then --env-file."""
    env = {k: v for k, v in config.load().items() if not k.startswith("CODERUNNER_")}
    for path in env_files:
        env.update(config.read_file(Path(path)))
    return env


# what `up` compares, and the flag a user would change it with
OPTION_FLAGS = {
    "image": "--image",
    "cpus": "--cpus",
    "memory": "--memory",
    "network": "--network/--no-network",
    "ssh_agent": "--with-ssh-agent",
    "credentials": "--with-credentials",
    "mounts": "--mount",
    "env_files": "--env-file",
    "env": "the environment (config or --env-file contents)",
    "credentials_set": "the credential dirs present",
    "workspace": "the workspace dir",
}


@dataclass
class _Wanted:
    """What the sandbox is to be started with, and its record for the state file."""

    image: str
    cpus: float | None
    memory: str | None
    network: bool
    ssh_agent: str | None
    mounts: list[Mount]
    env: dict[str, str]
    workspace: Path
    record: dict[str, Any]


def _digest(value: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _wanted(opts: UpOptions, old: dict[str, Any] | None) -> _Wanted:
    """Options the user gave win; those not given keep what the running sandbox was started with."""

    def pick(name: str, key: str, value: Any) -> Any:
        if old is not None and key in old and opts.given is not None and name not in opts.given:
            return old[key]
        return value

    image = pick("image", "image", opts.image)
    cpus = pick("cpus", "cpus", opts.cpus)
    memory = pick("memory", "memory", opts.memory)
    network = pick("network", "network", opts.network)
    with_ssh = pick("with_ssh_agent", "ssh_agent", opts.with_ssh_agent)
    with_creds = pick("with_credentials", "credentials", opts.with_credentials)
    mounts = [Mount.parse(m) for m in pick("mounts", "mounts", opts.mounts)]
    env_files = pick("env_files", "env_files", [str(Path(p).absolute()) for p in opts.env_files])
    env = sandbox_env([Path(p) for p in env_files])
    creds = credential_mounts(Path.home()) if with_creds else []
    ssh = None
    if with_ssh:
        ssh = os.environ.get("SSH_AUTH_SOCK")
        if not ssh or not os.path.exists(ssh):
            raise UsageError(
                "--with-ssh-agent: no SSH agent is running here (SSH_AUTH_SOCK is not set): "
                "start one with `eval $(ssh-agent)` and `ssh-add`"
            )
    workspace = opts.workspace or paths.workspace()
    record = {
        "image": image,
        "cpus": cpus,
        "memory": memory,
        "network": network,
        "ssh_agent": bool(with_ssh),
        "credentials": bool(with_creds),
        "mounts": [m.volume for m in mounts],
        "env_files": env_files,
        "env": _digest(env) if env else None,
        "credentials_set": _digest([m.source for m in creds]) if with_creds else None,
        "workspace": str(workspace),
    }
    return _Wanted(image, cpus, memory, network, ssh, mounts + creds, env, workspace, record)


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    if "env" not in old:  # started by an older coderunner: nothing recorded to compare
        return []
    return [key for key in new if old.get(key) != new[key]]


def _end(runtime: Runtime, name: str, timeout: float) -> None:
    """End a sandbox for good, keeping its workspace."""
    runtime.stop(name, timeout)
    # a stopped sandbox of a resumable runtime still exists; one that cannot resume leaves only
    # its workspace behind, which its `remove` would delete
    if runtime.resumable:
        runtime.remove(name)


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
    wanted = _wanted(opts, current.options if current is not None and same_runtime else None)
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
    current: state.SandboxState, wanted: _Wanted, opts: UpOptions, say: Progress, start: _Start
) -> UpResult | None:
    """The sandbox that is there, when it will do (running, or resumed); else it is ended
    (or left stopped) and ``start`` says why a new one starts."""
    runtime = get(current.runtime)
    st = runtime.status(current.name)
    changes = _changes(current.options, wanted.record)
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


def _spec(name: str, wanted: _Wanted, env_file: Path | None) -> ContainerSpec:
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


def _record(runtime: Runtime, name: str, url: str, wanted: _Wanted) -> None:
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


def image_context() -> Path | None:
    """The image's build context: $CODERUNNER_IMAGE_CONTEXT, or container_image/ of a source checkout."""
    env = os.environ.get("CODERUNNER_IMAGE_CONTEXT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent / "container_image"
    return here if (here / "Dockerfile").is_file() else None


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


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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
