"""Output: data to stdout (a Rich table, or JSON with --json); everything else to stderr."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")) or None, highlight=False)


def note(message: str) -> None:
    """A diagnostic line on stderr."""
    print(message, file=sys.stderr, flush=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(rows: list[dict[str, Any]], columns: list[str], *, as_json: bool, empty: str = "nothing to show") -> None:
    if as_json:
        emit_json(rows)
        return
    if not rows:
        note(empty)
        return
    if not sys.stdout.isatty():  # plain, tab-separated: easy to cut/awk
        sys.stdout.write("\t".join(c.upper() for c in columns) + "\n")
        for r in rows:
            sys.stdout.write("\t".join(_cell(r.get(c)) for c in columns) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    for c in columns:
        t.add_column(c.upper())
    for r in rows:
        t.add_row(*(_cell(r.get(c)) for c in columns))
    Console().print(t)


def fields(data: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    width = max(len(k) for k in data) if data else 0
    for key, value in data.items():
        sys.stdout.write(f"{key:<{width}}  {_cell(value)}\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
