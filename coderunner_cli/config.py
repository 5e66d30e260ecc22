"""``~/.coderunner.config``: dotenv ``KEY=VALUE`` lines passed into the sandbox.

Values are secrets (API keys): the file is written 0600 and shown masked.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import paths
from .errors import ConfigError

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse(text: str, source: str = "config") -> dict[str, str]:
    """The format ``coderunner_gateway.settings.read_env_file`` reads in the sandbox."""
    env: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not KEY.match(key):
            raise ConfigError(f"{source}:{lineno}: expected KEY=VALUE, got {raw.strip()[:40]!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def read_file(path: Path) -> dict[str, str]:
    try:
        return parse(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise ConfigError(f"env file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


def load() -> dict[str, str]:
    path = paths.config_file()
    return read_file(path) if path.exists() else {}


def dumps(env: dict[str, str]) -> str:
    lines = ["# coderunner: KEY=VALUE lines passed into the sandbox as environment"]
    for key, value in env.items():
        needs_quotes = value != value.strip() or any(c in value for c in " #'\"")
        lines.append(f"{key}={quote(value) if needs_quotes else value}")
    return "\n".join(lines) + "\n"


def quote(value: str) -> str:
    return "'" + value + "'" if "'" not in value else '"' + value + '"'


def save(env: dict[str, str]) -> Path:
    path = paths.config_file()
    paths.write_private(path, dumps(env))
    return path


def check_key(key: str) -> str:
    if not KEY.match(key):
        raise ConfigError(f"{key!r} is not a valid variable name (letters, digits, _; not starting with a digit)")
    return key


def mask(value: str) -> str:
    """Enough to recognise a key, never enough to use it."""
    return value[:3] + "****" + value[-2:] if len(value) >= 12 else "*" * len(value)
