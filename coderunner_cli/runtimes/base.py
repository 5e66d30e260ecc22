"""What every runtime does, and the spec of the sandbox it starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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
    spec: ContainerSpec, *, host: str, isolation: list[str] | tuple[str, ...] = (), token_from_env: bool = False
) -> list[str]:
    """The gateway's command line in the sandbox. ``isolation``: how it keeps code from
    itself and sessions apart (``--isolation ...``), which each runtime decides;
    ``token_from_env``: the token and environment come as environment variables
    (docker/podman/apple ``-e NAME``) rather than as files in the secrets dir."""
    args = ["coderunner-gateway", "--workspace", SANDBOX_WORKSPACE, *isolation]
    if not token_from_env:
        args += ["--token-file", f"{SECRETS}/token"]
        if spec.env_file is not None:
            args += ["--env-file", f"{SECRETS}/sandbox.env"]
    if spec.skills_dir is not None:
        args += ["--user-skills-dir", USER_SKILLS]
    if spec.network:
        args += ["--host", host, "--port", str(GATEWAY_PORT)]
    else:
        args += ["--uds", f"{RUN_DIR}/gateway.sock"]
    return args


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
