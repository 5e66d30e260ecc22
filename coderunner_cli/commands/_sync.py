"""`coderunner exec -w DIR`: a script's folder sent with it, and hints when it was not.

The folder's files go to the workspace folder of DIR's name (what is left out, and the limits,
are below); without -w, a module or relative file missed next to the script here gets a hint.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

MIB = 1024 * 1024
SYNC_SKIP_DIRS = frozenset({".git", "__pycache__", ".venv", "node_modules"})
SYNC_MAX_FILE = 10 * MIB  # a bigger file is skipped (said on stderr)
SYNC_MAX_TOTAL = 100 * MIB  # a bigger folder is refused


@dataclass
class SyncPlan:
    """What `-w DIR` sends: DIR's files, to the workspace folder ``name``."""

    name: str
    files: list[tuple[str, Path]] = field(default_factory=list)  # (path under name/, host file)
    skipped: list[tuple[str, int]] = field(default_factory=list)  # (path, size) over SYNC_MAX_FILE
    script: str | None = None  # the script's path relative to DIR


def plan_sync(directory: Path, target: str | None) -> SyncPlan:
    """The files of ``directory`` to upload (not .git, __pycache__, .venv, node_modules, links out of it,
    nor files over :data:`SYNC_MAX_FILE`); :class:`UsageError` if the rest is over :data:`SYNC_MAX_TOTAL`
    or the script is not inside it."""
    if not directory.is_dir():
        raise UsageError(f"-w {directory}: not a directory")
    root = directory.resolve()
    if not root.name:
        raise UsageError(f"-w {directory}: give a project folder, not /")
    plan = SyncPlan(root.name)
    if target not in (None, "-"):
        script = Path(target).resolve()
        if root not in script.parents:
            raise UsageError(f"{target} is not inside {directory}: -w takes the folder the script is in (or above)")
        plan.script = script.relative_to(root).as_posix()
    total = 0
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SYNC_SKIP_DIRS)
        for name in sorted(names):
            path = Path(here, name)
            if path.is_symlink() and root not in path.resolve().parents:
                continue  # a link out of the folder: what it points at was not given
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            size = path.stat().st_size
            if size > SYNC_MAX_FILE:
                plan.skipped.append((rel, size))
                continue
            total += size
            plan.files.append((rel, path))
    if total > SYNC_MAX_TOTAL:
        raise UsageError(
            f"-w {directory}: {total / MIB:.0f} MiB to upload, over the limit of "
            f"{SYNC_MAX_TOTAL // MIB} MiB: give a smaller folder (.git, .venv, node_modules, "
            "__pycache__ are left out already)"
        )
    return plan


def upload(cr, plan: SyncPlan) -> None:
    for rel, size in plan.skipped:
        print(
            f"coderunner: skipped {plan.name}/{rel} ({size / MIB:.1f} MiB, over -w's {SYNC_MAX_FILE // MIB} MiB "
            "a file)",
            file=sys.stderr,
        )
    for rel, path in plan.files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"coderunner: skipped {plan.name}/{rel}: {exc.strerror}", file=sys.stderr)
            continue
        cr.upload(f"{plan.name}/{rel}", data)


def missing_sibling_hint(target: str, error: dict) -> str | None:
    """A one-line hint when the code missed a module or relative file that sits next to the script here."""
    folder = Path(target).parent
    value = str(error.get("evalue", ""))
    if error.get("ename") == "ModuleNotFoundError":
        m = re.fullmatch(r"No module named '([^']+)'", value)
        top = m and m.group(1).split(".")[0]
        if not top or not ((folder / f"{top}.py").is_file() or (folder / top).is_dir()):
            return None
        what = f"module {top!r}"
    elif error.get("ename") == "FileNotFoundError":
        m = re.search(r"No such file or directory: '([^']+)'$", value)
        rel = m and m.group(1)
        if not rel or rel.startswith("/") or not (folder / rel).exists():
            return None
        what = f"{rel!r}"
    else:
        return None
    return (
        f"coderunner: {what} is next to {target} here, but only the script was sent: run "
        f"`coderunner exec -w {shlex.quote(str(folder))} {shlex.quote(target)}` to send its folder and run there"
    )
