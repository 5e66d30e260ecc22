"""What is running: which runtime and sandbox, its URL, and its token (0600)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from . import paths


@dataclass
class SandboxState:
    runtime: str
    name: str
    url: str
    image: str | None = None
    pid: int | None = None          # local runtime: the bwrap process
    created_at: float = 0.0
    options: dict = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        try:
            return paths.token_file().read_text().strip() or None
        except FileNotFoundError:
            return None


def load() -> SandboxState | None:
    try:
        data = json.loads(paths.state_file().read_text())
    except (FileNotFoundError, ValueError):
        return None
    known = {k: v for k, v in data.items() if k in SandboxState.__dataclass_fields__}
    try:
        return SandboxState(**known)
    except TypeError:
        return None


def save(state: SandboxState, token: str | None = None) -> None:
    if token is not None:
        paths.write_private(paths.token_file(), token + "\n")
    paths.write_private(paths.state_file(), json.dumps(asdict(state), indent=2) + "\n")


def clear() -> None:
    for p in (paths.state_file(), paths.token_file()):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
