"""What is running: which runtime and sandbox, its URL, what it was started with, and its token (0600).

Each sandbox (``--name``, see :mod:`paths`) has a state dir of its own, and
one state dir has at most one sandbox: `up` and `down` hold :func:`lock` for
their whole run, so two of them never start or end sandboxes side by side.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from . import paths


@dataclass
class SandboxState:
    runtime: str
    name: str
    url: str
    image: str | None = None
    created_at: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # what it was started with (digests, never secret values)
    sandbox: str = paths.DEFAULT_SANDBOX  # its --name (state.json of older versions: the default one)

    @property
    def token(self) -> str | None:
        try:
            return paths.token_file(self.sandbox).read_text().strip() or None
        except FileNotFoundError:
            return None


def load(name: str | None = None) -> SandboxState | None:
    """The sandbox NAME's state (default: the selected sandbox), or None."""
    name = name or paths.sandbox()
    try:
        data = json.loads(paths.state_file(name).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    known = {k: v for k, v in data.items() if k in SandboxState.__dataclass_fields__}
    known["sandbox"] = name  # where it was found is what it is called
    try:
        return SandboxState(**known)
    except TypeError:
        return None


def names() -> list[str]:
    """Every sandbox with a state file: ``default`` first, then the others by name."""
    found = [paths.DEFAULT_SANDBOX] if paths.state_file(paths.DEFAULT_SANDBOX).is_file() else []
    with contextlib.suppress(OSError):
        for d in sorted(paths.sandboxes_dir().iterdir()):
            if (
                paths.SANDBOX_NAME.fullmatch(d.name)
                and d.name != paths.DEFAULT_SANDBOX
                and (d / "state.json").is_file()
            ):
                found.append(d.name)
    return found


def save(state: SandboxState) -> None:
    paths.write_private(paths.state_file(state.sandbox), json.dumps(asdict(state), indent=2) + "\n")


def clear(name: str | None = None) -> None:
    """Forget the sandbox and delete its secrets (token, environment)."""
    for p in (paths.state_file(name), paths.token_file(name), paths.env_file(name)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    with contextlib.suppress(OSError):  # only when empty
        paths.secrets_dir(name).rmdir()


@contextlib.contextmanager
def lock(timeout: float = 600, waiting: Callable[[str], object] | None = None) -> Iterator[None]:
    """Hold the selected sandbox's lock (fcntl.flock, released by the kernel if we die)."""
    import fcntl

    from .errors import RuntimeTimeout

    path = paths.lock_file()
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
                    raise RuntimeTimeout(
                        f"another `coderunner up` or `down` holds {path} for more than "
                        f"{timeout:g}s: wait for it, or end it"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock
