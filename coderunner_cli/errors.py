"""The exception tree; each error carries the message a user sees and an exit code.

    CoderunnerError               exit 1 unless a subclass says otherwise
    ├── UsageError                2   bad arguments or input (missing file, ...)
    ├── SandboxNotRunning         3   no sandbox: run `coderunner up`
    ├── ConfigError               78  bad ~/.coderunner.config or --env-file
    ├── RuntimeUnavailable        69  no usable runtime (docker down, no bwrap, ...)
    │   └── RuntimeTimeout        75  the runtime did not get ready in time
    ├── CommandFailed             71  an external command failed (argv, code, stderr kept)
    └── GatewayError              65  the gateway refused a request (4xx)
        ├── AuthError             77  wrong or missing token
        ├── SessionNotFound       66  no such session
        ├── GatewayUnavailable    69  the gateway does not answer
        └── ProcessLimitReached   71  the sandbox could not start a process (its process limit)

`coderunner exec` otherwise exits with the code's own exit code
(0, 1, SystemExit(n), 124 timeout, 130 interrupted, 137 died).
"""

from __future__ import annotations


class CoderunnerError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CoderunnerError):
    exit_code = 2


class SandboxNotRunning(CoderunnerError):
    exit_code = 3

    def __init__(self, message: str = "the sandbox is not running: start it with `coderunner up`") -> None:
        super().__init__(message)

    @classmethod
    def named(cls, sandbox: str | None = None) -> SandboxNotRunning:
        """Not running, said for the sandbox NAME (default: the selected one)."""
        from . import paths

        sandbox = sandbox or paths.sandbox()
        if sandbox == paths.DEFAULT_SANDBOX:
            return cls()
        return cls(f"the sandbox {sandbox!r} is not running: start it with `coderunner up --name {sandbox}`")


class ConfigError(CoderunnerError):
    exit_code = 78


class RuntimeUnavailable(CoderunnerError):
    exit_code = 69


class RuntimeTimeout(RuntimeUnavailable):
    exit_code = 75


class CommandFailed(CoderunnerError):
    exit_code = 71

    def __init__(self, argv: list[str], returncode: int, stderr: str, hint: str = "") -> None:
        import shlex

        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        msg = f"`{shlex.join(argv[:3])}{' ...' if len(argv) > 3 else ''}` failed (exit {returncode}): {last}"
        super().__init__(msg + (f"; {hint}" if hint else ""))
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class GatewayError(CoderunnerError):
    exit_code = 65

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(GatewayError):
    exit_code = 77


class SessionNotFound(GatewayError):
    exit_code = 66


class GatewayUnavailable(GatewayError):
    exit_code = 69


class ProcessLimitReached(GatewayError):
    """503 ``process_limit``: a fork refused in the sandbox (sysexits' EX_OSERR, "cannot fork")."""

    exit_code = 71


class ExecutionError(CoderunnerError):
    """Raised by :func:`coderunner_cli.execute` when the code itself failed."""

    def __init__(self, result) -> None:  # result: ExecutionResult
        err = result.error or {}
        head = f"{err.get('ename')}: {err.get('evalue')}" if err else f"exit code {result.exit_code} ({result.status})"
        super().__init__(head)
        self.result = result
        self.exit_code = result.exit_code or 1
        self.traceback = "".join(err.get("traceback", [])) if err else result.stderr
