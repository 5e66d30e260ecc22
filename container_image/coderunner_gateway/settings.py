"""Gateway settings: one frozen dataclass filled from the command line."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field

MiB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    workspace: str
    token: str | None = None
    pool_size: int = 2
    max_sessions: int = 32
    session_ttl: float = 3600.0
    max_output_bytes: int = 16 * MiB
    max_request_bytes: int = 32 * MiB
    default_timeout: float | None = None
    max_timeout: float = 24 * 3600.0
    extra_env: dict[str, str] = field(default_factory=dict)  # from --env-file: API keys for the code
    skills_dir: str | None = None       # public skills (default: the ones shipped beside the package)
    user_skills_dir: str | None = None  # user skills, a mounted dir (.zip files unpacked there)
    chromium: str | None = None         # browser executable (default: chromium on PATH)
    python: str = sys.executable
    bash: str = "bash"
    # private dir (0700) for kernel connection files, IPC sockets and scripts
    runtime_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="coderunner-gw-"))

    def child_env(self, extra: dict[str, str] | None = None, *, kernel: bool = False) -> dict[str, str]:
        """Environment for code we run: ours minus the gateway's secrets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODERUNNER_TOKEN")}
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        if not kernel:  # kernels pick matplotlib's inline backend themselves
            env.setdefault("MPLBACKEND", "Agg")
        env["CODERUNNER_WORKSPACE"] = self.workspace
        if extra:
            env.update(extra)
        return env


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (dotenv subset): ``#`` comments, optional ``export``, quotes.

    The CLI writes these with ``coderunner_cli.config``, which parses the same
    format; the gateway ships alone in the image, so it cannot import that."""
    env: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[7:].lstrip()
            key, sep, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key.replace("_", "").isalnum() or key[0].isdigit():
                raise ValueError(f"{path}:{lineno}: expected KEY=VALUE")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key] = value
    return env
