"""coderunner: sandboxed code execution on your own machine, as a Python library.

    from coderunner import CodeRunner, AsyncCodeRunner, execute

The client lives in the ``coderunner_cli`` package, with the CLI; this name
re-exports it, and ``from coderunner_cli import CodeRunner`` keeps working
(both give the same classes). Names are imported on first use, as there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import coderunner_cli as _cli

__version__ = _cli.__version__
__all__ = [  # coderunner_cli's (a test checks they stay the same)
    "AsyncCodeRunner",
    "AsyncSession",
    "AuthError",
    "CodeRunner",
    "CoderunnerError",
    "ExecutionError",
    "ExecutionResult",
    "GatewayError",
    "GatewayUnavailable",
    "SandboxNotRunning",
    "Session",
    "SessionNotFound",
    "__version__",
    "execute",
]

if TYPE_CHECKING:
    from coderunner_cli.client import AsyncCodeRunner, AsyncSession, CodeRunner, ExecutionResult, Session, execute
    from coderunner_cli.errors import (
        AuthError,
        CoderunnerError,
        ExecutionError,
        GatewayError,
        GatewayUnavailable,
        SandboxNotRunning,
        SessionNotFound,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(_cli, name)
    raise AttributeError(f"module 'coderunner' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
