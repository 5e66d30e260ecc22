"""`coderunner browse`: a page through the sandbox's headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._options import SandboxOpt, group

cli = group()


BROWSE_FORMATS = ("text", "markdown", "html", "links")


@cli.command()
def browse(
    url: Annotated[str, typer.Argument(help="An http(s) URL, opened in the sandbox's Chromium.")],
    sandbox_name: SandboxOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text, markdown, html or links.")] = "text",
    screenshot: Annotated[Path | None, typer.Option(help="Save a PNG screenshot here instead.")] = None,
    full_page: Annotated[bool, typer.Option(help="With --screenshot: the whole page.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the page.")] = 30,
) -> None:
    """Open a page in the sandbox's headless browser; print its text, markdown, HTML or links."""
    from .. import render
    from ..client import CodeRunner
    from ..errors import UsageError
    from .exec_ import check_timeout

    if format not in BROWSE_FORMATS:
        raise UsageError(f"--format {format!r}: use one of {', '.join(BROWSE_FORMATS)}")
    check_timeout(timeout)

    with CodeRunner() as cr:
        if screenshot is not None:
            png = cr.browser_screenshot(url, full_page=full_page, timeout=timeout)
            screenshot.write_bytes(png)
            render.note(f"coderunner: saved a screenshot of {url} to {screenshot}")
            return
        page = cr.browser_content(url, format, timeout=timeout)
    if format == "links":
        for link in page["content"]:
            print(f"{link['href']}\t{link['text']}")
    else:
        print(page["content"])
