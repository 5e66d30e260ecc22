"""The `exec` command's options; the work is in exec_.py, which the fast path (_fast.py) calls without typer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import SandboxOpt, group

cli = group()


@cli.command(name="exec", context_settings={"allow_interspersed_args": False})
def exec_(
    sandbox_name: SandboxOpt = None,
    file: Annotated[
        str | None, typer.Argument(help="Script to run (.py, .sh), or - for stdin.", show_default=False)
    ] = None,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the script.", show_default=False)] = None,
    code: Annotated[str | None, typer.Option("-c", "--code", help="Code to run instead of a file.")] = None,
    session: Annotated[str | None, typer.Option("--session", "-s", help="Run in this session (keeps state).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the code is stopped (exit 124).")] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", "-l", help="python or bash (default: from the extension).")
    ] = None,
    outputs: Annotated[Path | None, typer.Option(help="Where to save images (default ./coderunner-outputs).")] = None,
    sync: Annotated[
        Path | None,
        typer.Option(
            "-w",
            "--sync",
            metavar="DIR",
            show_default=False,
            help="Upload DIR to the workspace (as DIR's name) and run the script there.",
        ),
    ] = None,
) -> None:
    """Run code in the sandbox; exit with its exit code."""
    from .exec_ import run as run_exec

    raise typer.Exit(run_exec(file, args or [], code, session, timeout, lang, outputs, sync))
