"""How an execution ended, and the exit codes of the README ("Exit codes")."""

from __future__ import annotations

import signal
from dataclasses import dataclass

EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130
EXIT_DIED = 137


@dataclass
class Outcome:
    status: str  # ok | error | timeout | interrupted | died
    exit_code: int
    message: str | None = None
    state_lost: bool = False
    signal: str | None = None
    dropped: dict[str, int] | None = None  # output a kernel cut before sending it

    @classmethod
    def from_exit(cls, code: int) -> Outcome:
        return cls("ok" if code == 0 else "error", code)

    @classmethod
    def timeout(cls, seconds: float, what: str) -> Outcome:
        return cls("timeout", EXIT_TIMEOUT, f"timed out after {seconds:g}s; {what}")

    @classmethod
    def from_returncode(cls, rc: int) -> Outcome:
        """Map a POSIX wait status (negative = killed by signal)."""
        if rc >= 0:
            return cls.from_exit(rc)
        sig = -rc
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGINT:
            return cls("interrupted", EXIT_INTERRUPTED, signal=name)
        return cls("died", EXIT_DIED, f"the process was killed by {name}", signal=name)


def system_exit_code(evalue: str) -> int:
    """Exit code of ``SystemExit(evalue)`` as Python's interpreter computes it."""
    text = evalue.strip()
    if text in ("", "None"):
        return 0
    try:
        return int(text)
    except ValueError:
        return 1


def system_exit_prints(evalue: str) -> bool:
    """Whether python prints ``SystemExit(evalue)``'s value on stderr: ``sys.exit("msg")`` does,
    ``sys.exit(3)`` and ``sys.exit()`` do not."""
    text = evalue.strip()
    return text not in ("", "None") and system_exit_code(evalue) == 1 and text != "1"
