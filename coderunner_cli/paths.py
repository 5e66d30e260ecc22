"""Every path coderunner uses, from platformdirs, each overridable by env.

``CODERUNNER_HOME`` moves all state (tests point it at a temp dir);
``CODERUNNER_CONFIG`` moves the config file.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    if env := os.environ.get("CODERUNNER_HOME"):
        return Path(env)
    from platformdirs import user_state_dir

    return Path(user_state_dir("coderunner", appauthor=False))


def config_file() -> Path:
    return Path(os.environ.get("CODERUNNER_CONFIG") or Path.home() / ".coderunner.config")


def state_file() -> Path:
    return home() / "state.json"


def secrets_dir() -> Path:
    """Mounted read-only into the sandbox: the token and the environment (0700/0600)."""
    return home() / "secrets"


def token_file() -> Path:
    return secrets_dir() / "token"


def env_file() -> Path:
    """The environment handed to the sandbox (config + --env-file), 0600."""
    return secrets_dir() / "sandbox.env"


def skills_dir() -> Path:
    """Your skills (folders with a SKILL.md, or .zip files), mounted read-only into the sandbox."""
    return Path(os.environ.get("CODERUNNER_SKILLS") or home() / "skills")


def log_file() -> Path:
    return home() / "gateway.log"


def workspace() -> Path:
    return Path(os.environ.get("CODERUNNER_WORKSPACE") or home() / "workspace")


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
