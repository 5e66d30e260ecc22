"""What every command group shares: plain help, `--json`, `--name`."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
# Every command that talks to a sandbox takes it; app._user_errors selects it (paths.use_sandbox) before the command runs
SandboxOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        envvar="CODERUNNER_SANDBOX",
        show_default=False,
        help="Which sandbox (default: `default`); each has its own workspace, token and state. See `coderunner ls`.",
    ),
]


def group(help: str | None = None) -> typer.Typer:
    """A command group. Help is click's plain text: no colour or bold codes (NO_COLOR holds),
    at most 80 columns, no rich import. Without ``help`` its commands join the root's."""
    return typer.Typer(no_args_is_help=help is not None, help=help, rich_markup_mode=None)
