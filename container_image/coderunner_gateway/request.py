"""What an execution asks for: parsed and checked once (``api/execute.py``), then handed as
it is to the backend that runs it (a session's kernel or bash, or a script process)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sessions import Session


@dataclass(frozen=True)
class ExecuteRequest:
    code: str
    language: str = "python"
    timeout: float | None = None
    session: Session | None = None  # None: a script, run as a fresh process
    # scripts only (refused with a session)
    stdin: bytes | None = None
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    filename: str | None = None
    cwd: str | None = None  # the folder it starts in, as the cells see it
