"""Pick the runtime: ``--runtime`` > ``$CODERUNNER_RUNTIME`` > config > auto-detect.

Auto-detect: ``apple`` on macOS when ``container`` exists; else docker, then
podman, when their engine answers; else ``local`` (bubblewrap) on Linux.
"""

from __future__ import annotations

import os
import shutil
import sys

from ..errors import RuntimeUnavailable, UsageError
from .base import ContainerSpec, Mount, Runtime, Status

NAMES = ("apple", "docker", "podman", "local")
__all__ = ["NAMES", "ContainerSpec", "Mount", "Runtime", "Status", "get", "resolve"]


def get(name: str, sandbox: str | None = None) -> Runtime:
    """The runtime NAME, for the sandbox ``sandbox`` (default: the selected one; only local keeps files)."""
    if name == "apple":
        from .apple import AppleRuntime

        return AppleRuntime()
    if name in ("docker", "podman"):
        from .docker import DockerRuntime

        return DockerRuntime(name)
    if name == "local":
        from .. import paths
        from .local import LocalRuntime

        return LocalRuntime(state_dir=paths.sandbox_dir(sandbox), workspace=paths.workspace(sandbox))
    raise UsageError(f"unknown runtime {name!r}: use one of {', '.join(NAMES)}")


def resolve(flag: str | None = None) -> tuple[Runtime, str]:
    """The runtime to use and where the choice came from."""
    if flag:
        return get(flag), "--runtime"
    if env := os.environ.get("CODERUNNER_RUNTIME"):
        return get(env), "CODERUNNER_RUNTIME"
    from .. import config

    if configured := config.load().get("CODERUNNER_RUNTIME"):
        return get(configured), "config"
    if sys.platform == "darwin" and shutil.which("container"):
        return get("apple"), "auto-detected"
    for name in ("docker", "podman"):
        if shutil.which(name):
            rt = get(name)
            if rt.problem() is None:
                return rt, "auto-detected"
    if sys.platform == "linux" and shutil.which("bwrap"):
        return get("local"), "auto-detected (no container engine answered)"
    raise RuntimeUnavailable(
        "no runtime found: install Apple `container` (macOS), Docker or Podman, or bubblewrap (Linux), "
        "or choose one with --runtime"
    )
