"""Every path coderunner uses, from platformdirs, each overridable by env.

``CODERUNNER_HOME`` moves all state (tests point it at a temp dir);
``CODERUNNER_CONFIG`` moves the config file.

Each sandbox has a state dir of its own (workspace, token and environment,
state.json, lock, run dir, log, pid file): the ``default`` sandbox keeps the
paths it always had, directly in ``CODERUNNER_HOME``; any other NAME lives in
``CODERUNNER_HOME/sandboxes/NAME``. Which one: ``--name`` (:func:`use_sandbox`)
> ``$CODERUNNER_SANDBOX`` > ``default``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_SANDBOX = "default"
SANDBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_selected: str | None = None  # --name, for this process


def home() -> Path:
    if env := os.environ.get("CODERUNNER_HOME"):
        return Path(env)
    from platformdirs import user_state_dir

    return Path(user_state_dir("coderunner", appauthor=False))


def config_file() -> Path:
    return Path(os.environ.get("CODERUNNER_CONFIG") or Path.home() / ".coderunner.config")


def check_sandbox_name(name: str) -> str:
    from .errors import UsageError

    if not SANDBOX_NAME.fullmatch(name):
        raise UsageError(
            f"sandbox name {name[:80]!r}: use letters, digits, '-', '_' and '.', starting with a "
            "letter or digit (at most 40)"
        )
    return name


def use_sandbox(name: str | None) -> None:
    """Select the sandbox this process talks to (``--name``); None: back to $CODERUNNER_SANDBOX or default."""
    global _selected
    _selected = None if name is None else check_sandbox_name(name)


def sandbox() -> str:
    """The selected sandbox's name: ``--name`` > $CODERUNNER_SANDBOX > ``default``."""
    return _selected or check_sandbox_name(os.environ.get("CODERUNNER_SANDBOX") or DEFAULT_SANDBOX)


def sandboxes_dir() -> Path:
    return home() / "sandboxes"


def sandbox_dir(name: str | None = None) -> Path:
    """A sandbox's state dir: $CODERUNNER_HOME for ``default`` (where it always was), else sandboxes/NAME."""
    name = check_sandbox_name(name) if name is not None else sandbox()
    return home() if name == DEFAULT_SANDBOX else sandboxes_dir() / name


def state_file(name: str | None = None) -> Path:
    return sandbox_dir(name) / "state.json"


def lock_file(name: str | None = None) -> Path:
    return sandbox_dir(name) / "lock"


def run_dir(name: str | None = None) -> Path:
    """The gateway's socket and ready file (local runtime)."""
    return sandbox_dir(name) / "run"


def secrets_dir(name: str | None = None) -> Path:
    """Mounted read-only into the sandbox: the token and the environment (0700/0600)."""
    return sandbox_dir(name) / "secrets"


def token_file(name: str | None = None) -> Path:
    return secrets_dir(name) / "token"


def env_file(name: str | None = None) -> Path:
    """The environment handed to the sandbox (config + --env-file), 0600."""
    return secrets_dir(name) / "sandbox.env"


def skills_dir() -> Path:
    """Your skills (folders with a SKILL.md, or .zip files), mounted read-only into the sandbox."""
    return Path(os.environ.get("CODERUNNER_SKILLS") or home() / "skills")


def log_file(name: str | None = None) -> Path:
    return sandbox_dir(name) / "gateway.log"


def workspace(name: str | None = None) -> Path:
    """$CODERUNNER_WORKSPACE moves the default sandbox's only: two sandboxes never share one."""
    name = check_sandbox_name(name) if name is not None else sandbox()
    env = os.environ.get("CODERUNNER_WORKSPACE") if name == DEFAULT_SANDBOX else None
    return Path(env or sandbox_dir(name) / "workspace")


def outputs_dir() -> Path:
    return Path(os.environ.get("CODERUNNER_OUTPUTS") or Path.cwd() / "coderunner-outputs")


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file readable by the owner only, atomically, never world-readable."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
