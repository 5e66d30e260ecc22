"""`coderunner skills`: the skills in the sandbox."""

from __future__ import annotations

from ._options import JsonOpt, SandboxOpt, group

cli = group("Skills: instructions and scripts agents can use.")


@cli.command("ls")
def skills_ls(as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """List the skills in the sandbox."""
    from .. import render
    from ..client import CodeRunner

    with CodeRunner() as cr:
        rows = cr.skills()
    render.table(rows, ["name", "source", "description"], as_json=as_json, empty="no skills")


@cli.command("show")
def skills_show(name: str, as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """A skill's instructions and files."""
    from .. import render
    from ..client import CodeRunner

    with CodeRunner() as cr:
        info = cr.skill(name)
    if as_json:
        render.emit_json(info)
        return
    print(f"{info['name']} ({info['source']}): {info['description']}\npath: {info['path']}\nfiles:")
    for f in info["files"]:
        print(f"  {f}")
    print()
    print(info["instructions"].rstrip())
