"""coderunner: sandboxed code execution on your own machine.

    from coderunner_cli import CodeRunner, AsyncCodeRunner, execute

Names are imported on first use, so ``import coderunner_cli`` stays cheap
for the CLI (which imports this package on every call).
"""

import sys  # first: no `from __future__` import before the hook below (Ctrl-C landed in importing it)


def _interrupted_while_starting(kind, value, tb):
    """Ctrl-C while the CLI imports, before app.main() can catch it: one line and 130, as main() says."""
    if issubclass(kind, KeyboardInterrupt):
        import os

        print("coderunner: interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    sys.__excepthook__(kind, value, tb)


if sys.argv and sys.argv[0].rsplit("/", 1)[-1] == "coderunner":  # first thing the CLI runs; not for library users
    sys.excepthook = _interrupted_while_starting

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a few ms of every CLI call)

__version__ = "0.1.0"
__all__ = [
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
_ERRORS = {
    "AuthError",
    "CoderunnerError",
    "ExecutionError",
    "GatewayError",
    "GatewayUnavailable",
    "SandboxNotRunning",
    "SessionNotFound",
}

if TYPE_CHECKING:
    from typing import Any

    from .client import AsyncCodeRunner, AsyncSession, CodeRunner, ExecutionResult, Session, execute
    from .errors import (
        AuthError,
        CoderunnerError,
        ExecutionError,
        GatewayError,
        GatewayUnavailable,
        SandboxNotRunning,
        SessionNotFound,
    )


def __getattr__(name: str) -> "Any":
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    if name in __all__ and name != "__version__":
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'coderunner_cli' has no attribute {name!r}")
