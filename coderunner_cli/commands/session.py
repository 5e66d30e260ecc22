"""`coderunner session`: sessions, a kernel each, in the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import JsonOpt, SandboxOpt, group

if TYPE_CHECKING:
    from ..client import CodeRunner

cli = group("Persistent sessions (a kernel each).")


@cli.command("new")
def session_new(
    sandbox_name: SandboxOpt = None,
    name: Annotated[str | None, typer.Argument(help="A name to refer to it by.")] = None,
    lang: Annotated[str, typer.Option("--lang", "-l", help="python or bash.")] = "python",
    as_json: JsonOpt = False,
) -> None:
    """Create a session."""
    from .. import render
    from ..client import CodeRunner
    from .exec_ import check_lang, check_session_name

    check_lang(lang)
    if name is not None:
        check_session_name(name)
    with CodeRunner() as cr:
        info = cr.session(name, lang).info
    if as_json:
        render.emit_json(info)
    else:
        print(info["name"] or info["session_id"])


@cli.command("ls")
def session_ls(as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """List sessions."""
    from .. import render
    from ..client import CodeRunner

    with CodeRunner() as cr:
        rows = cr.sessions()
    render.table(
        rows,
        ["session_id", "name", "language", "executions", "busy", "restarts"],
        as_json=as_json,
        empty="no sessions: create one with `coderunner session new`",
    )


def _session_action(name: str, done: str, act: Callable[[CodeRunner, str], object]) -> None:
    """Check the name, ``act`` on the session, say ``done``."""
    from .. import render
    from ..client import CodeRunner
    from .exec_ import check_session_name

    check_session_name(name)
    with CodeRunner() as cr:
        act(cr, name)
    render.note(f"coderunner: session {name}: {done} done")


@cli.command("rm")
def session_rm(
    name: Annotated[str, typer.Argument(help="Session name or id.")], sandbox_name: SandboxOpt = None
) -> None:
    """Delete a session."""
    _session_action(name, "delete", lambda cr, n: cr.delete_session(n))


@cli.command("restart")
def session_restart(
    name: Annotated[str, typer.Argument(help="Session name or id.")], sandbox_name: SandboxOpt = None
) -> None:
    """Give a session a fresh kernel (its state is cleared)."""
    _session_action(name, "restart", lambda cr, n: cr.restart(n))


@cli.command("interrupt")
def session_interrupt(
    name: Annotated[str, typer.Argument(help="Session name or id.")], sandbox_name: SandboxOpt = None
) -> None:
    """Interrupt what a session is running."""
    _session_action(name, "interrupt", lambda cr, n: cr.interrupt(n))
