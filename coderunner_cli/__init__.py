"""coderunner: sandboxed code execution on your own machine.

    from coderunner_cli import CodeRunner, AsyncCodeRunner, execute

Names are imported on first use, so ``import coderunner_cli`` stays cheap
for the CLI (which imports this package on every call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "AsyncCodeRunner",
    "AsyncSession",
    "CodeRunner",
    "ExecutionError",
    "ExecutionResult",
    "Session",
    "__version__",
    "execute",
]

if TYPE_CHECKING:
    from .client import AsyncCodeRunner, AsyncSession, CodeRunner, ExecutionResult, Session, execute
    from .errors import ExecutionError


def __getattr__(name: str) -> Any:
    if name == "ExecutionError":
        from .errors import ExecutionError

        return ExecutionError
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'coderunner_cli' has no attribute {name!r}")
