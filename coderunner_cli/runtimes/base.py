"""What every runtime does, and the spec of the sandbox it starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ._argv import Command

DEFAULT_IMAGE = "coderunner:latest"
GATEWAY_PORT = 8222  # inside the sandbox
SANDBOX_WORKSPACE = "/workspace"
SANDBOX_HOME = "/home/sandbox"
SSH_SOCK = "/run/host-services/ssh-auth.sock"  # where Apple's --ssh puts it; we match it everywhere
SECRETS = "/run/coderunner/secrets"  # the host's secrets dir, read-only: token, sandbox.env
GATEWAY_DIR = "/run/coderunner/gateway"  # the gateway's own; closed to code (root 0700 in the image)
RUN_DIR = f"{GATEWAY_DIR}/run"  # with --no-network: the gateway's unix socket
USER_SKILLS = "/run/coderunner/skills"  # the host's skills dir, read-only


def gateway_args(
    spec: ContainerSpec,
    *,
    isolation: str,
    program: Sequence[str] = ("coderunner-gateway",),
    code_ids: tuple[int, int] | None = None,
    pass_env: bool = False,
    socket_owner: str | None = None,
    share_mounts: bool = False,
    secret_fds: tuple[int, int] | None = None,
    host: str = "0.0.0.0",
    port: int = GATEWAY_PORT,
    uds: str = f"{RUN_DIR}/gateway.sock",
    ready_file: str | None = None,
) -> list[str]:
    """The gateway's command line in the sandbox; each runtime says what it needs.

    ``isolation``: how the gateway keeps code from itself and sessions apart
    (``setid``: as ``code_ids``; ``bwrap``: a nested sandbox per cell, which
    sees the mounts only with ``share_mounts``). The token and environment
    never appear: they come as environment variables (``pass_env``: the
    gateway hands code the env file's names) or on ``secret_fds`` (token, env).
    ``socket_owner``: who may use the unix socket ``uds`` (without network)."""
    cmd = Command([*program, "--workspace", SANDBOX_WORKSPACE, "--isolation", isolation])
    if code_ids is not None:
        cmd.add_simple_arg("--code-uid", code_ids[0])
        cmd.add_simple_arg("--code-gid", code_ids[1])
    cmd.add_simple_arg("--base-home", SANDBOX_HOME)
    if pass_env:
        cmd.add_args_iterable("--pass-env", env_names(spec))
    if not spec.network:
        cmd.add_simple_arg("--socket-owner", socket_owner)
    if share_mounts:
        for m in spec.mounts:
            cmd.add_simple_arg("--share-ro" if m.read_only else "--share", m.target)
    if secret_fds is not None:
        cmd.add_simple_arg("--token-fd", secret_fds[0])
        cmd.add_simple_arg("--env-fd", secret_fds[1])
    if spec.skills_dir is not None:
        cmd.add_simple_arg("--user-skills-dir", USER_SKILLS)
    if spec.network:
        cmd.add_simple_arg("--host", host)
        cmd.add_simple_arg("--port", port)
    else:
        cmd.add_simple_arg("--uds", uds)
    cmd.add_simple_arg("--ready-file", ready_file)
    return cmd


def env_names(spec: ContainerSpec) -> list[str]:
    """The names in the sandbox's env file (never its values: those go in an environment)."""
    if spec.env_file is None or not spec.env_file.exists():
        return []
    from ..config import read_file

    return list(read_file(spec.env_file))


# --with-credentials mounts these (when they exist) read-only into the sandbox's home
CREDENTIAL_DIRS = (".claude", ".codex", ".cursor", ".config/gh", ".config/gcloud", ".aws", ".azure")


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Mount:
        from ..errors import UsageError

        parts = text.split(":")
        if (
            len(parts) not in (2, 3)
            or not parts[0]
            or not parts[1]
            or (len(parts) == 3 and parts[2] not in ("ro", "rw"))
        ):
            raise UsageError(f"--mount {text!r}: expected SRC:DST or SRC:DST:ro")
        src = Path(parts[0]).expanduser().resolve()
        if not src.exists():
            raise UsageError(f"--mount {text!r}: {src} does not exist")
        if not parts[1].startswith("/"):
            raise UsageError(f"--mount {text!r}: the destination must be an absolute path in the sandbox")
        return cls(str(src), parts[1], len(parts) == 3 and parts[2] == "ro")

    @property
    def volume(self) -> str:
        """``SRC:DST[:ro]``, as ``--mount`` and the runtimes' ``-v``/``--volume`` take it."""
        return f"{self.source}:{self.target}{':ro' if self.read_only else ''}"


@dataclass
class ContainerSpec:
    name: str
    image: str
    secrets_dir: Path  # holds `token` and maybe `sandbox.env` (0600); never on a command line
    env_file: Path | None = None  # secrets_dir/sandbox.env when there is any environment
    workspace: Path | None = None
    run_dir: Path | None = None  # host dir the sandbox may write its ready file / socket to
    skills_dir: Path | None = None  # the user's skills, mounted read-only
    cpus: float | None = None
    memory: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    ssh_agent: str | None = None  # host socket path to forward
    network: bool = True
    host_port: int | None = None


@dataclass
class Status:
    state: str  # running | stopped | missing
    detail: str = ""


class Runtime(Protocol):
    name: str
    isolation: str  # a phrase for `status` and the README
    # What `up` asks of a runtime instead of its name:
    resumable: bool  # a stopped sandbox keeps its container, and `resume` starts it again; if not,
    # `stop` ends it for good (nothing is left to `remove` but its workspace) and `up` starts a new one
    enforces_limits: bool  # --cpus and --memory hold (cgroups, a VM); if not, `up` warns
    needs_image: bool  # it runs an image, which `up` pulls or builds when missing

    def problem(self) -> str | None:
        """Why this runtime cannot be used here (None when it can)."""

    def prepare(self, timeout: float) -> None:
        """Make the runtime ready (start Apple's container system, check the engine)."""

    def has_image(self, image: str) -> bool: ...

    def pull(self, image: str) -> None: ...

    def build(self, tag: str, context: str, build_args: dict[str, str]) -> None: ...

    def status(self, name: str) -> Status: ...

    def create(self, spec: ContainerSpec) -> str:
        """Start a new sandbox; return the gateway URL."""

    def resume(self, name: str) -> str:
        """Start a stopped sandbox again; return the gateway URL."""

    def stop(self, name: str, timeout: float) -> None: ...

    def remove(self, name: str) -> None: ...

    def logs(self, name: str, follow: bool, tail: int | None) -> int: ...

    def exec_interactive(self, name: str, argv: list[str]) -> int: ...


def credential_mounts(home: Path) -> list[Mount]:
    """--with-credentials: the agent and cloud CLI dirs that exist, read-only."""
    return [Mount(str(home / d), f"{SANDBOX_HOME}/{d}", read_only=True) for d in CREDENTIAL_DIRS if (home / d).exists()]
