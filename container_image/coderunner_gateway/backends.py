"""What a session holds: a backend that runs code and keeps state between executions,
a Jupyter kernel for python (kernels.py), a bash process for bash (bash.py)."""

from __future__ import annotations

from typing import Protocol

from .events import Sink
from .outcome import Outcome
from .request import ExecuteRequest
from .settings import Settings


class Backend(Protocol):
    language: str

    async def execute(self, req: ExecuteRequest, sink: Sink, output_limit: int | None = None) -> Outcome: ...
    async def interrupt(self) -> None: ...
    async def is_alive(self) -> bool: ...
    async def shutdown(self) -> None: ...


async def start_backend(language: str, settings: Settings) -> Backend:
    if language == "python":
        from .kernels import PythonKernel

        return await PythonKernel.start(settings)
    from .bash import BashProcess

    return await BashProcess.start(settings)
