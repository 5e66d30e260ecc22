"""`coderunner mcp`: an MCP server on stdio, bridged to the sandbox (mcp_bridge.py)."""

from __future__ import annotations

from ._options import SandboxOpt, group

cli = group()


@cli.command()
def mcp(sandbox_name: SandboxOpt = None) -> None:
    """An MCP server on stdio bridged to the sandbox: `claude mcp add coderunner -- coderunner mcp`."""
    from ..mcp_bridge import run as run_bridge

    run_bridge()
