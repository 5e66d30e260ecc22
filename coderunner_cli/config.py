"""``~/.coderunner.config``: dotenv ``KEY=VALUE`` lines passed into the sandbox.

Values are secrets (API keys): the file is written 0600 and shown masked.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import paths
from .errors import ConfigError

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A value written without quotes: nothing a shell or a dotenv reader would treat specially.
BARE = re.compile(r"[^\s'\"\\#$`]*")
DOUBLE_QUOTE_ESCAPES = {
    "\\": "\\",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "$": "$",
    "`": "`",
    "'": "'",
}


def parse(text: str, source: str = "config") -> dict[str, str]:
    r"""Dotenv ``KEY=VALUE`` lines; the contract ``coderunner_gateway.settings.read_env_file`` follows too,
    checked by both against ``tests/fixtures/dotenv-vectors.json``:

    - lines end at ``\n`` (a ``\r`` before it is dropped); blank lines and ``#`` lines are skipped;
    - ``[export ]KEY=VALUE``, KEY is ASCII ``[A-Za-z_][A-Za-z0-9_]*``, spaces and tabs around ``=`` ignored;
    - a bare VALUE is the rest of the line without surrounding spaces and tabs, taken as it is;
    - ``'...'`` is taken as it is; ``"..."`` has escapes ``\\ \" \' \$ \` \n \r \t \a \b \f \v``
      (any other backslash stays); after the closing quote only spaces and a ``# comment``;
    - no variable expansion, no value spanning lines; a NUL anywhere is refused.
    """
    env: dict[str, str] = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        try:
            entry = _parse_line(line)
        except ValueError as exc:
            raise ConfigError(f"{source}:{lineno}: {exc}, got {line.strip()[:40]!r}") from None
        if entry is not None:
            env[entry[0]] = entry[1]
    return env


_LINE = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*?)[ \t]*")


def _parse_line(line: str) -> tuple[str, str] | None:
    if not line.strip(" \t") or line.lstrip(" \t").startswith("#"):
        return None
    m = _LINE.fullmatch(line)
    if m is None:
        raise ValueError("expected KEY=VALUE")
    key, value = m.groups()
    if "\0" in value:
        raise ValueError("a NUL character cannot be in a value")
    if value[:1] not in ("'", '"'):
        return key, value
    quote, out, i = value[0], [], 1
    while i < len(value) and value[i] != quote:
        if quote == '"' and value[i] == "\\" and i + 1 < len(value):
            esc = DOUBLE_QUOTE_ESCAPES.get(value[i + 1])
            out.append(esc if esc is not None else value[i : i + 2])
            i += 2
        else:
            out.append(value[i])
            i += 1
    if i >= len(value):
        raise ValueError(f"the {quote} quote is not closed")
    rest = value[i + 1 :].lstrip(" \t")
    if rest and not rest.startswith("#"):
        raise ValueError("only a # comment may follow a quoted value")
    return key, "".join(out)


def read_file(path: Path) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return parse(f.read(), str(path))
    except FileNotFoundError:
        raise ConfigError(f"env file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a KEY=VALUE file") from None
    except PermissionError:
        raise ConfigError(f"cannot read {path}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


def load() -> dict[str, str]:
    path = paths.config_file()
    return read_file(path) if path.exists() else {}


def dumps(env: dict[str, str]) -> str:
    lines = ["# coderunner: KEY=VALUE lines passed into the sandbox as environment"]
    lines += [f"{key}={quote(check_value(key, value))}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def quote(value: str) -> str:
    """The shortest form :func:`parse` reads back as ``value``: bare, '...' (also literal in a shell), or "..."."""
    if BARE.fullmatch(value):
        return value
    if "'" not in value and value.isprintable():
        return "'" + value + "'"
    inverse = {v: k for k, v in DOUBLE_QUOTE_ESCAPES.items() if k != "'"}
    return '"' + "".join("\\" + inverse[c] if c in inverse else c for c in value) + '"'


def check_value(key: str, value: str) -> str:
    """Refuse what an environment variable cannot hold (a NUL) or UTF-8 cannot encode."""
    from .errors import UsageError

    if "\0" in value:
        raise UsageError(f"the value of {key} holds a NUL character, which an environment variable cannot hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"the value of {key} is not valid UTF-8") from None
    return value


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
