"""The `coderunner` command: wires the command groups of commands/, and is the one place errors become exit codes.

Commands parse, call the core (sandbox.py, client.py, config.py), render.
Heavy modules are imported inside the commands that need them: this runs in
shell pipelines, and `coderunner exec` must start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from typer.models import CommandInfo

from . import __version__
from .commands import browse, config, execute, lifecycle, mcp, session, skills
from .errors import CoderunnerError

app = typer.Typer(
    name="coderunner",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Sandboxed code execution on your own machine.",
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,  # help is click's plain text (see commands/_options.group)
)
# in the order `coderunner --help` lists them
for _group in (lifecycle, execute, mcp, browse):
    app.add_typer(_group.cli)
app.add_typer(session.cli, name="session")
app.add_typer(config.cli, name="config")
app.add_typer(skills.cli, name="skills")


def _version(value: bool) -> None:
    if value:
        print(f"coderunner {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every runtime command run (on stderr).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="coderunner: %(message)s")
        logging.getLogger("coderunner").setLevel(logging.DEBUG)


def _user_errors(fn):
    """Errors a user can cause become one line on stderr and their exit code.
    Applied to every command, so CliRunner and the installed binary agree."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            if "sandbox_name" in kwargs:
                from . import paths

                paths.use_sandbox(kwargs["sandbox_name"])
            return fn(*args, **kwargs)
        except CoderunnerError as exc:
            print(f"coderunner: {cli_words(exc.message)}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # `coderunner exec ... | head`: end quietly, as python does
            _stdout_to_devnull()
            raise typer.Exit(141) from None
        except KeyboardInterrupt:  # typer would turn it into a silent 130
            print("coderunner: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def _stdout_to_devnull() -> None:
    """The reader is gone: later writes and the flush at exit must not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (CliRunner)
        pass


# what the gateway tells HTTP clients, said as the CLI's commands and options
_HTTP_TO_CLI = (
    (
        "delete one with DELETE /v1/sessions/{id}, or start the gateway with a higher --max-sessions",
        "delete one with `coderunner session rm NAME` (`coderunner session ls` lists them)",
    ),
    ("GET /v1/sessions", "`coderunner session ls`"),
    ("POST /v1/sessions", "`coderunner session new`"),
    ("GET /v1/skills", "`coderunner skills ls`"),
)


def cli_words(message: str) -> str:
    import re

    for route, command in _HTTP_TO_CLI:
        message = message.replace(route, command)
    message = re.sub(r"field 'code'", "the code", message)
    return re.sub(r"field '(\w+)'", lambda m: "--" + m.group(1).replace("_", "-"), message)


def _commands(typer_app: typer.Typer) -> Iterator[CommandInfo]:
    """Every command registered on ``typer_app`` and the groups added to it."""
    yield from typer_app.registered_commands
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            yield from _commands(group.typer_instance)


for _cmd in _commands(app):
    _cmd.callback = _user_errors(_cmd.callback)


def main() -> None:
    try:
        rv = app(standalone_mode=False)
    except CoderunnerError as exc:  # raised outside a command (a callback)
        print(f"coderunner: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("coderunner: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `coderunner exec ... | head`
        _stdout_to_devnull()
        sys.exit(141)
    except Exception as exc:
        # click's exceptions (vendored as typer._click in typer >= 0.28): duck-typed
        if type(exc).__name__ == "Abort":
            print("coderunner: interrupted", file=sys.stderr)
            sys.exit(130)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
