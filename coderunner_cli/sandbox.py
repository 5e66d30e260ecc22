"""Sandbox lifecycle: the core that `up`, `down` and `status` call.

Functions return plain dataclasses; the commands render them.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, paths, state
from .errors import SandboxNotRunning, UsageError
from .runtimes import ContainerSpec, Mount, Runtime, get, resolve
from .runtimes.base import DEFAULT_IMAGE, credential_mounts


def sandbox_name() -> str:
    """The container's name: `coderunner`, or $CODERUNNER_NAME (one sandbox per state dir)."""
    return os.environ.get("CODERUNNER_NAME") or "coderunner"


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


@dataclass
class UpResult:
    url: str
    runtime: str
    source: str
    action: str          # started | resumed | already running
    isolation: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class StatusReport:
    running: bool
    runtime: str | None = None
    isolation: str | None = None
    state: str = "missing"
    url: str | None = None
    healthy: bool = False
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


def up(opts: UpOptions, progress=None) -> UpResult:
    say = progress or (lambda _msg: None)
    current = state.load()
    if current is not None and opts.runtime in (None, current.runtime):
        runtime = get(current.runtime)
        st = runtime.status(current.name)
        if st.state == "running" and wait_healthy(current.url, current.token, 5, raise_=False):
            return UpResult(current.url, runtime.name, "state", "already running", runtime.isolation)
        if st.state == "stopped" and current.runtime != "local":
            say(f"resuming the {runtime.name} sandbox")
            url = runtime.resume(current.name)
            current.url = url
            state.save(current)
            wait_healthy(url, current.token, 120)
            return UpResult(url, runtime.name, "state", "resumed", runtime.isolation)
    if current is not None and opts.runtime not in (None, current.runtime) \
            and get(current.runtime).status(current.name).state == "running":
        raise UsageError(f"a {current.runtime} sandbox is running: stop it with `coderunner down` "
                         f"before starting one with --runtime {opts.runtime}")
    runtime, source = (get(current.runtime), "state") if current and opts.runtime is None else resolve(opts.runtime)
    warnings = []
    if runtime.name == "local" and (opts.cpus or opts.memory):
        warnings.append("the local runtime cannot enforce --cpus/--memory (no cgroups); use docker, podman or apple")
    say(f"preparing {runtime.name}")
    runtime.prepare(opts.timeout)
    if not runtime.has_image(opts.image):
        context = image_context()
        if opts.image == DEFAULT_IMAGE and context is not None:
            say(f"building {opts.image} (first time only; progress on stderr)")
            runtime.build(opts.image, str(context), {})
        else:
            say(f"pulling {opts.image}")
            runtime.pull(opts.image)
    name = sandbox_name()
    st = runtime.status(name)
    if st.state != "missing" and runtime.name != "local":
        runtime.remove(name)  # a sandbox we have no token for: replace it
    token = secrets.token_urlsafe(32)
    paths.ensure_private_dir(paths.secrets_dir())
    paths.write_private(paths.token_file(), token + "\n")
    env = sandbox_env(opts.env_files)
    env_file = None
    if env:
        paths.write_private(paths.env_file(), config.dumps(env))
        env_file = paths.env_file()
    else:
        paths.env_file().unlink(missing_ok=True)
    mounts = [Mount.parse(m) for m in opts.mounts]
    if opts.with_credentials:
        mounts += credential_mounts(Path.home())
    ssh = None
    if opts.with_ssh_agent:
        ssh = os.environ.get("SSH_AUTH_SOCK")
        if not ssh or not os.path.exists(ssh):
            raise UsageError("--with-ssh-agent: no SSH agent is running here (SSH_AUTH_SOCK is not set): "
                             "start one with `eval $(ssh-agent)` and `ssh-add`")
    workspace = opts.workspace or paths.workspace()
    workspace.mkdir(parents=True, exist_ok=True)
    spec = ContainerSpec(
        name=name, image=opts.image, secrets_dir=paths.secrets_dir(), env_file=env_file, workspace=workspace,
        run_dir=paths.ensure_private_dir(paths.home() / "run"), cpus=opts.cpus, memory=opts.memory,
        skills_dir=_mkdir(paths.skills_dir()),
        mounts=mounts, ssh_agent=ssh, network=opts.network,
    )
    say(f"starting the sandbox ({runtime.name})")
    url = runtime.create(spec)
    state.save(state.SandboxState(runtime=runtime.name, name=name, url=url, image=opts.image,
                                  created_at=time.time(),
                                  options={"network": opts.network, "ssh_agent": bool(ssh),
                                           "credentials": opts.with_credentials}))
    say("waiting for the gateway")
    wait_healthy(url, token, 120)
    return UpResult(url, runtime.name, source, "started", runtime.isolation, warnings)


def image_context() -> Path | None:
    """The image's build context: $CODERUNNER_IMAGE_CONTEXT, or container_image/ of a source checkout."""
    env = os.environ.get("CODERUNNER_IMAGE_CONTEXT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent / "container_image"
    return here if (here / "Dockerfile").is_file() else None


def build(runtime_name: str | None, tag: str, context: Path | None, build_args: dict[str, str],
          ca_certs: list[Path]) -> str:
    import shutil

    runtime, _ = resolve(runtime_name)
    context = context or image_context()
    if context is None or not (context / "Dockerfile").is_file():
        raise UsageError("no build context: pass --context DIR (the container_image/ folder of coderunner's "
                         "sources), or use a published image with `coderunner up --image REF`")
    certs = context / "build" / "certs"
    for cert in ca_certs:
        if not cert.is_file():
            raise UsageError(f"--ca-cert {cert}: no such file")
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(cert, certs / (cert.stem + ".crt"))
    runtime.prepare(600)
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
        raise SandboxNotRunning(f"the gateway at {url} did not become healthy within {timeout:g}s ({last}); "
                                "see `coderunner logs`")
    return False


def down(remove: bool = False, timeout: float = 10) -> str:
    current = state.load()
    if current is None:
        raise SandboxNotRunning("there is no sandbox to stop")
    runtime = get(current.runtime)
    runtime.stop(current.name, timeout)
    if remove:
        runtime.remove(current.name)
        state.clear()
        return "removed"
    return "stopped"


def status() -> StatusReport:
    current = state.load()
    if current is None:
        return StatusReport(False, detail="no sandbox: run `coderunner up`")
    runtime: Runtime = get(current.runtime)
    st = runtime.status(current.name)
    report = StatusReport(False, runtime.name, runtime.isolation, st.state, current.url, detail=st.detail)
    if st.state == "running":
        from .client import CodeRunner
        from .errors import CoderunnerError

        try:
            with CodeRunner(current.url, current.token, timeout=5) as cr:
                health = cr.health()
                cr.sessions()
            report.healthy = True
            report.version = health.get("version")
            report.sessions = health.get("sessions")
            report.warm_kernels = health.get("warm_kernels")
        except CoderunnerError as exc:
            report.detail = str(exc)
    report.running = report.healthy
    return report


def require_running():
    current = state.load()
    if current is None:
        raise SandboxNotRunning()
    return current, get(current.runtime)
