"""What is running: which runtime and sandbox, its URL, what it was started with, and its token (0600).

One state dir has at most one sandbox: `up` and `down` hold :func:`lock` for
their whole run, so two of them never start or end sandboxes side by side.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
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
    options: dict = field(default_factory=dict)  # what it was started with (digests, never secret values)

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
    """Forget the sandbox and delete its secrets (token, environment)."""
    for p in (paths.state_file(), paths.token_file(), paths.env_file()):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    with contextlib.suppress(OSError):  # only when empty
        paths.secrets_dir().rmdir()


@contextlib.contextmanager
def lock(timeout: float = 600, waiting: Callable[[str], object] | None = None) -> Iterator[None]:
    """Hold the state dir's lock (fcntl.flock, released by the kernel if we die)."""
    import fcntl

    from .errors import RuntimeTimeout

    path = paths.home() / "lock"
    paths.ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said and waiting is not None:
                    waiting("waiting for another `coderunner up` or `down` on this sandbox")
                    said = True
                if time.monotonic() > deadline:
                    raise RuntimeTimeout(f"another `coderunner up` or `down` holds {path} for more than "
                                         f"{timeout:g}s: wait for it, or end it") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock
