"""The one door to external commands.

Every runtime runs its tools through :func:`run` (or :func:`spawn` for
long-lived processes): argv as strings, logged with ``shlex.join`` at debug,
and a failure turned into :class:`CommandFailed` with argv, code and stderr.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import subprocess
from collections.abc import Iterable, Mapping

from ..errors import CommandFailed, RuntimeTimeout, RuntimeUnavailable

log = logging.getLogger("coderunner")


def says_missing(stderr: str | None) -> bool:
    """Whether a tool's stderr says the container it was asked about does not exist
    (docker and podman: "no such container"; Apple's ``container``: "not found")."""
    text = (stderr or "").lower()
    return "not found" in text or "no such container" in text


def run(
    cmd: list[str],
    *,
    timeout: float | None = 120,
    input: str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    hint: str = "",
    progress: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``progress``: the tool's stdout (pull/build progress) goes to our stderr as it
    comes; its stderr is still captured for the error message."""
    import sys

    log.debug("run: %s", shlex.join(cmd))
    try:
        proc = subprocess.run(
            cmd,
            input=input,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=sys.stderr if progress else subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise RuntimeUnavailable(
            f"`{cmd[0]}` is not installed or not on PATH" + (f"; {hint}" if hint else "")
        ) from None
    except subprocess.TimeoutExpired:
        raise RuntimeTimeout(
            f"`{shlex.join(cmd[:3])}` did not finish within {timeout:g}s" + (f"; {hint}" if hint else "")
        ) from None
    if check and proc.returncode != 0:
        raise CommandFailed(cmd, proc.returncode, proc.stderr or "", hint)
    return proc


def spawn(
    cmd: list[str],
    *,
    log_path: str,
    env: Mapping[str, str] | None = None,
    pass_fds: Iterable[int] = (),
    max_processes: int | None = None,
) -> subprocess.Popen:
    """Start a detached, long-lived process writing to ``log_path``. ``max_processes``: its
    RLIMIT_NPROC (inherited by all it starts; counted over its uid's processes)."""
    log.debug("spawn: %s", shlex.join(cmd))
    limit = None
    if max_processes is not None:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        if hard != resource.RLIM_INFINITY:  # the user's own limit is stricter: keep it (raising it fails)
            max_processes = min(max_processes, hard)

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))

    with open(log_path, "ab") as logf:
        try:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
                preexec_fn=limit,
            )
        except FileNotFoundError:
            raise RuntimeUnavailable(f"`{cmd[0]}` is not installed or not on PATH") from None
        except (OSError, subprocess.SubprocessError) as exc:  # one line, not subprocess's traceback
            raise RuntimeUnavailable(f"could not start `{cmd[0]}`: {exc}") from None


def interactive(
    cmd: list[str], env: Mapping[str, str] | None = None, *, stderr_to_stdout: bool = False, pty: bool = False
) -> int:
    """Run attached to the terminal (shell, agents, logs); return its exit code.
    ``stderr_to_stdout``: for logs, which are data even when the tool writes them to stderr.
    ``pty``: when stdin is a terminal, give the command a pseudo-terminal of its own and relay
    it, so nothing inside can reach ours (TIOCSTI would type into the caller's shell)."""
    import sys

    log.debug("interactive: %s", shlex.join(cmd))
    try:
        if pty and sys.stdin.isatty():
            return _pty_relay(cmd, env)
        return subprocess.call(
            cmd, env=dict(env) if env is not None else None, stderr=subprocess.STDOUT if stderr_to_stdout else None
        )
    except FileNotFoundError:
        raise RuntimeUnavailable(f"`{cmd[0]}` is not installed or not on PATH") from None


def _pty_relay(cmd: list[str], env: Mapping[str, str] | None) -> int:
    import fcntl
    import os
    import pty
    import signal
    import sys
    import termios
    import tty

    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    pid, master = pty.fork()  # the child: a new session whose controlling terminal is the pty
    if pid == 0:
        try:
            os.execvpe(cmd[0], cmd, dict(env) if env is not None else os.environ)
        finally:
            os._exit(127)

    def resize(*_: object) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8))

    resize()
    old_winch = signal.signal(signal.SIGWINCH, resize)
    saved = termios.tcgetattr(stdin)
    tty.setraw(stdin)
    try:
        _copy_until_eof(master, stdin, stdout)
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _copy_until_eof(master: int, stdin: int, stdout: int) -> None:
    """Relay the pty's output to ``stdout`` and ``stdin`` to the pty until either side ends."""
    import os
    import select

    while True:
        try:
            ready, _, _ = select.select([master, stdin], [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                return
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 65536)
            if not data:
                return
            os.write(master, data)


def descendants(root: int) -> list[int]:
    """Every process below ``root``, from /proc's children lists (Linux)."""
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        frontier += kids
    return found
