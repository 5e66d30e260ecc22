"""What `up` starts the sandbox with: the options given, the running sandbox's for those not given,
and their record in the state file (a change in it means recreating the sandbox)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, paths
from .errors import UsageError
from .runtimes import Mount
from .runtimes.base import DEFAULT_IMAGE, credential_mounts


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
class Wanted:
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


def wanted_for(opts: UpOptions, old: dict[str, Any] | None) -> Wanted:
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
    return Wanted(image, cpus, memory, network, ssh, mounts + creds, env, workspace, record)


def changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    if "env" not in old:  # started by an older coderunner: nothing recorded to compare
        return []
    return [key for key in new if old.get(key) != new[key]]
