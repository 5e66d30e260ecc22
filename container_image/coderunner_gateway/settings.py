"""Gateway settings: one frozen dataclass filled from the command line."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024

# What code inherits of the gateway's own environment; everything else (the host's
# variables when the gateway was started by hand, its settings) stays out.
PASSED_ENV = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "VIRTUAL_ENV",
    "SSH_AUTH_SOCK",
    "CODERUNNER_SANDBOX",
    "PYTHONIOENCODING",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "PIP_CERT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


@dataclass(frozen=True)
class Settings:
    workspace: str
    token: str | None = None
    pool_size: int = 2  # warm python kernels kept ready: the pool's floor
    pool_max: int | None = None  # what the pool may grow to under demand (None: no growth beyond pool_size)
    pool_idle: float = 120.0  # seconds without a new session after which the pool halves, to pool_size
    script_pool: int = 2  # warm python interpreters for scripts, each in its own cell
    max_sessions: int = 32
    session_ttl: float = 3600.0
    max_output_bytes: int = 16 * MiB
    max_request_bytes: int = 32 * MiB
    default_timeout: float | None = None
    max_timeout: float = 24 * 3600.0
    extra_env: dict[str, str] = field(default_factory=dict)  # from --env-file: API keys for the code
    skills_dir: str | None = None  # public skills (default: the ones shipped beside the package)
    user_skills_dir: str | None = None  # user skills, a mounted dir (.zip files unpacked there)
    chromium: str | None = None  # browser executable (default: chromium on PATH)
    python: str = sys.executable
    bash: str = "bash"
    # private dir (0700) for kernel connection files, IPC sockets and scripts
    runtime_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="coderunner-gw-"))
    jail: Any = field(default=None, compare=False)  # jail.Jail: makes the cells code runs in

    def child_env(self, extra: Mapping[str, str] | None = None, *, kernel: bool = False) -> dict[str, str]:
        """Environment for code we run: an allowlist of ours, never the gateway's secrets."""
        env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("LC_")}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.setdefault("LANG", "C.UTF-8")
        env["USER"] = env["LOGNAME"] = "sandbox"
        env["SHELL"] = "/bin/bash"
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        if not kernel:  # kernels pick matplotlib's inline backend themselves
            env.setdefault("MPLBACKEND", "Agg")
        env["CODERUNNER_WORKSPACE"] = self.workspace
        if extra:
            env.update(extra)
        return env


def read_env_file(path: str) -> dict[str, str]:
    r"""Dotenv ``KEY=VALUE`` lines, the contract ``coderunner_cli.config.parse`` writes and reads
    (the gateway ships alone in the image, so it cannot import that; both are checked
    against the same vectors, ``tests/fixtures/dotenv-vectors.json``):

    - lines end at ``\n`` (a ``\r`` before it is dropped); blank lines and ``#`` lines are skipped;
    - ``[export ]KEY=VALUE``, KEY is ASCII ``[A-Za-z_][A-Za-z0-9_]*``, spaces and tabs around ``=`` ignored;
    - a bare VALUE is the rest of the line without surrounding spaces and tabs, taken as it is;
    - ``'...'`` is taken as it is; ``"..."`` has escapes ``\\ \" \' \$ \` \n \r \t \a \b \f \v``
      (any other backslash stays); after the closing quote only spaces and a ``# comment``;
    - no variable expansion, no value spanning lines; a NUL anywhere is refused.
    """
    import re

    line_re = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*?)[ \t]*")
    env: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip(" \t") or line.lstrip(" \t").startswith("#"):
            continue
        where = f"{path}:{lineno}"
        m = line_re.fullmatch(line)
        if m is None:
            raise ValueError(f"{where}: expected KEY=VALUE")
        key, value = m.groups()
        if "\0" in value:
            raise ValueError(f"{where}: a NUL character cannot be in a value")
        if value[:1] in ("'", '"'):
            value = _unquote(value, where)
        env[key] = value
    return env


_ESCAPES = {
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


def _unquote(value: str, where: str) -> str:
    """A quoted VALUE of :func:`read_env_file`: ``'...'`` as it is, ``"..."`` with its escapes."""
    quote, out, i = value[0], [], 1
    while i < len(value) and value[i] != quote:
        if quote == '"' and value[i] == "\\" and i + 1 < len(value):
            out.append(_ESCAPES.get(value[i + 1], value[i : i + 2]))
            i += 2
        else:
            out.append(value[i])
            i += 1
    if i >= len(value):
        raise ValueError(f"{where}: the {quote} quote is not closed")
    rest = value[i + 1 :].lstrip(" \t")
    if rest and not rest.startswith("#"):
        raise ValueError(f"{where}: only a # comment may follow a quoted value")
    return "".join(out)
