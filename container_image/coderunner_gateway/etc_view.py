"""What a bwrap cell sees as ``/etc``: copies of the host's allowlisted entries, in one folder.

A cell needs some of the host's ``/etc`` (DNS, users, certificates, the loader's cache) and
none of the rest (``machine-id``, ``ssh``, ``shadow``, cloud agents' configuration). Binding
each of ~30 entries costs a mount and a remount apiece, in every cell, and again when the cell
ends: ~9 ms of CPU per script, kernel and bash on our test VM, more than the rest of the cell.
So the entries are copied once into one folder, which each cell binds read-only at ``/etc``.

The copies follow the host: every ``RECHECK`` seconds (at most), when a cell starts, the
entries and the folders within them are looked at again (``stat``, ~50 calls here), and a
change makes a new copy that the cells started from then on see. Cells already running keep the copy they
started with, as a bind of a file that is then replaced would have kept the old one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterable
from itertools import count

log = logging.getLogger("coderunner_gateway")

RECHECK = 2.0  # seconds between looks at the host's entries
KEEP = 2  # copies kept: a cell being set up may still be binding the one before the newest


class EtcView:
    def __init__(self, root: str, names: Iterable[str], source: str = "/etc", recheck: float = RECHECK) -> None:
        self.root = root
        self.names = tuple(names)
        self.source = source
        self.recheck = recheck
        os.makedirs(root, mode=0o755, exist_ok=True)
        self._generation = count(1)
        self._copies: list[str] = []
        self._watch: list[tuple[str, bool]] = []  # (path, its link followed)
        self._signature: tuple[object, ...] = ()
        self._checked = float("-inf")

    def path(self) -> str:
        """The folder to bind at ``/etc``: the newest copy, made anew if the host's changed."""
        now = time.monotonic()
        if not self._copies or (now - self._checked >= self.recheck and self._stamps() != self._signature):
            self._copy()
        self._checked = now
        return self._copies[-1]

    def _entries(self) -> list[tuple[str, str]]:
        """(name, host path) of the allowlisted entries that exist (links followed)."""
        return [(n, p) for n in self.names if os.path.exists(p := os.path.join(self.source, n))]

    def _stamps(self) -> tuple[object, ...]:
        """What changes when an entry does: each entry (its link followed) and each folder
        within (adding, removing or replacing a file changes its folder; dpkg, editors and
        update-ca-certificates replace files), in ~50 stat calls, not a walk of every file."""
        return tuple(_stamp(path, follow=top) for path, top in self._watch)

    def _copy(self) -> None:
        entries = self._entries()
        self._watch = [(os.path.join(self.source, n), True) for n in self.names]  # missing ones too
        for _, path in entries:
            if os.path.isdir(path):
                self._watch += [(top, False) for top, _, _ in os.walk(path)]
        self._signature = self._stamps()  # before copying: a change meanwhile shows next time
        dest = os.path.join(self.root, str(next(self._generation)))
        os.mkdir(dest, 0o755)
        os.chmod(dest, 0o755)
        for name, path in entries:
            target = os.path.join(dest, name)
            for parent in _parents(dest, name):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(parent, 0o755)
            try:
                if os.path.isdir(path):
                    shutil.copytree(path, target, symlinks=True, ignore_dangling_symlinks=True)
                else:
                    shutil.copy2(path, target)
            except OSError as exc:  # not readable by the gateway: the code could not read it either
                log.debug("/etc/%s is not in the cells' view: %s", name, exc)
        self._copies.append(dest)
        for old in self._copies[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        del self._copies[:-KEEP]


def _stamp(path: str, *, follow: bool) -> tuple[object, ...]:
    try:
        st = os.stat(path, follow_symlinks=follow)
    except OSError:
        return (path, None)
    link = os.readlink(path) if not follow and os.path.islink(path) else None
    return (path, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_mode, link)


def _parents(dest: str, name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return [os.path.join(dest, *parts[: i + 1]) for i in range(len(parts))]
