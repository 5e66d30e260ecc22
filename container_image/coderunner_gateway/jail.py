"""Who runs the code: every script, kernel and bash the gateway starts lives in a *cell*.

The gateway and the code it runs have different identities, and no cell
reaches another. A :class:`Jail` makes cells; there is one per gateway,
chosen by ``--isolation``:

``bwrap``  (the ``local`` runtime, and any Linux with unprivileged user
           namespaces) each cell is a nested bubblewrap sandbox: its own
           user, PID, IPC and mount namespaces, a fresh ``/proc`` that shows
           only its own processes, a sized private ``/tmp``, read-only
           system and Python directories, the workspace, and its own
           private directory (home, kernel connection file and sockets).
           The gateway's run dir, token, secrets and other cells are not in
           its view. Ending the cell's ``bwrap`` ends every process in it.
``setid``  (the image: the gateway is root in the container or VM) each cell
           runs as the unprivileged code uid (``--code-uid``) with a group
           of its own (a fresh gid per cell) and no supplementary groups, no
           capabilities, no-new-privileges. Its private directory is
           ``root:<its gid> 2770``, so another cell (same uid, other gid)
           can neither enter it nor ptrace, read ``/proc/PID/{mem,environ,
           fd}`` of, or connect to the kernel sockets of another cell. The
           gid also tags every process of the cell, so ending it kills all
           of them, double-forked and setsid'd ones included.
``none``   no isolation (the code runs as the gateway): only when asked for.

``auto`` picks ``setid`` when the gateway is root and ``bwrap`` cannot
isolate, else ``bwrap``; it refuses to start when neither works.

Over ~300 lines because the three modes are subclasses of one :class:`Jail` whose cell
contract they share, kept beside the helpers they use and :func:`make_jail` choosing among them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from .etc_view import EtcView

log = logging.getLogger("coderunner_gateway")

MODES = ("auto", "bwrap", "setid", "none")
# Become (uid, gid) and exec the rest: where setpriv is missing
DROP = (
    "import ctypes, os, sys; os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1])); "
    "ctypes.CDLL(None).prctl(38, 1, 0, 0, 0); os.umask(0o022); os.execvp(sys.argv[3], sys.argv[3:])"
)
GID_BASE = 200000  # cell gids: above any real group, below 2**31
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4

# What a bwrap cell sees of /etc (copied: etc_view.py): what programs need, none of the host's secrets.
ETC_FILES = (
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "passwd",
    "group",
    "localtime",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "fonts",
    "mime.types",
    "os-release",
    "gai.conf",
    "host.conf",
    "protocols",
    "services",
    "matplotlibrc",
    "chromium",
    "chromium.d",
    "pki/tls/certs",
    "pki/ca-trust",
    "crypto-policies",
    "debian_version",
    "timezone",
    "bash.bashrc",
    "profile",
    "inputrc",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
    "mailcap",
    "xdg",
    "java",
    "gitconfig",
)


class IsolationUnavailable(RuntimeError):
    """The asked-for isolation cannot work here (the message says why and what to do)."""


@dataclass
class Cell:
    """One isolated unit: a session's kernel or bash, or one script run."""

    id: str
    dir: str  # private: home/, tmp/ (setid), kernel files
    home: str
    tmp: str
    gid: int | None = None  # setid: the cell's own group
    pid: int | None = None  # the process the gateway started (bwrap, or the code itself)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)


@dataclass
class JailConfig:
    mode: str = "auto"
    runtime_dir: str = ""
    workspace: str = ""
    code_uid: int | None = None  # setid: 1000 by default; bwrap as root: nobody (65534)
    code_gid: int | None = None
    base_home: str | None = None  # its entries (credentials) are linked into each cell's home
    shares: list[str] = field(default_factory=list)  # extra paths a bwrap cell sees read-write
    shares_ro: list[str] = field(default_factory=list)  # ... and read-only (skills, credentials, ssh socket)
    tmp_size: int = 1 << 30  # bytes of private /tmp per bwrap cell
    etc: str = "/etc"  # whose allowlisted entries (ETC_FILES) a bwrap cell sees at /etc
    bwrap: str = "bwrap"


class Jail:
    """No isolation: the base the others refine."""

    name = "none"

    def __init__(self, config: JailConfig) -> None:
        self.config = config
        self.cells_dir = os.path.join(config.runtime_dir, "cells")
        os.makedirs(self.cells_dir, mode=0o711, exist_ok=True)
        os.chmod(self.cells_dir, 0o711)
        self._ids = count(1)
        self._remover = _Remover()

    # -- cells -------------------------------------------------------------
    def open_cell(self, kind: str) -> Cell:
        cid = f"{kind}-{next(self._ids)}-{os.urandom(4).hex()}"
        path = os.path.join(self.cells_dir, cid)
        os.mkdir(path, 0o700)
        cell = Cell(cid, path, os.path.join(path, "home"), os.path.join(path, "tmp"))
        self._prepare(cell)
        return cell

    def _prepare(self, cell: Cell) -> None:
        os.mkdir(cell.home, 0o700)
        os.mkdir(cell.tmp, 0o700)
        self._link_base_home(cell)

    def _link_base_home(self, cell: Cell) -> None:
        """The cell's home holds links to the base home's entries (mounted credentials),
        down to each mount point, so the rest of home stays the cell's own and writable."""
        base = self.config.base_home
        if not base or not os.path.isdir(base):
            return

        def mirror(src: str, dst: str) -> None:
            for name in os.listdir(src):
                s, d = os.path.join(src, name), os.path.join(dst, name)
                if os.path.isdir(s) and not os.path.islink(s) and not os.path.ismount(s) and _has_mount_below(s):
                    os.makedirs(d, exist_ok=True)
                    mirror(s, d)
                else:
                    with contextlib.suppress(FileExistsError):
                        os.symlink(s, d)

        with contextlib.suppress(OSError):
            mirror(base, cell.home)

    def give(self, cell: Cell, path: str) -> None:
        """A file the gateway wrote for the cell (its script, a kernel's connection file):
        readable by the cell, by nobody else."""

    def wrapper(self, cell: Cell, program: str, env: dict[str, str]) -> str:
        """An executable that runs ``program`` (with its arguments and file descriptors)
        inside ``cell``: for a program that another starts, such as Chromium, launched by
        Playwright's driver. Returns its path."""
        import shlex

        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env(cell, env).items())
        path = cell.path("run-in-cell")
        with open(path, "w", encoding="utf-8") as f:
            f.write(
                f"#!/bin/sh\nexport {exports}\n{self._wrap_prelude(cell)}"
                f'exec {shlex.join(self._wrap_argv(cell, program))} "$@"\n'
            )
        os.chmod(path, 0o755)
        return path

    def _wrap_prelude(self, cell: Cell) -> str:
        return ""

    def _wrap_argv(self, cell: Cell, program: str) -> list[str]:
        return [program]

    def close_cell(self, cell: Cell) -> None:
        self.kill(cell)
        # its files go in the background, off the answer's way (~1 ms a cell here); nothing
        # can use them now: every process of the cell has been killed
        self._remover.remove(cell.dir)

    # -- processes ---------------------------------------------------------
    def command(self, cell: Cell, argv: list[str], *, extra_binds: tuple[str, ...] = ()) -> list[str]:
        return list(argv)

    def popen_kwargs(self, cell: Cell) -> dict[str, Any]:
        return {"start_new_session": True}

    def env(self, cell: Cell, env: dict[str, str]) -> dict[str, str]:
        return {**env, "HOME": cell.home, "TMPDIR": cell.tmp}

    def kill(self, cell: Cell) -> None:
        """End every process of the cell."""
        if cell.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(cell.pid, signal.SIGKILL)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.name}


class BwrapJail(Jail):
    name = "bwrap"

    def __init__(self, config: JailConfig) -> None:
        super().__init__(config)
        self.bwrap = shutil.which(config.bwrap) or config.bwrap
        # As root, a user namespace would map the code to host root (a setuid file it left in
        # the workspace would be setuid root): bwrap sets the cell up as root instead, and the
        # code is dropped to an unprivileged uid inside it.
        self.drop_to: tuple[int, int] | None = None
        if os.geteuid() == 0:
            uid = config.code_uid if config.code_uid is not None else 65534
            self.drop_to = (uid, config.code_gid if config.code_gid is not None else uid)
            self.setpriv = shutil.which("setpriv")
            if os.stat(config.workspace).st_uid == 0:
                os.chown(config.workspace, *self.drop_to)
        self._made: set[str] = set()
        self._etc = EtcView(os.path.join(config.runtime_dir, "etc"), ETC_FILES, config.etc)
        self._view = self._system_view()

    def _parents(self, path: str) -> list[str]:
        """``--dir`` for the directories above ``path``, traversable: bwrap makes them like
        the host's (``/root`` 0700), which an unprivileged code uid could not cross."""
        out: list[str] = []
        parts = path.rstrip("/").split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d not in self._made and d not in ("/usr", "/etc", "/proc", "/dev", "/tmp", "/run", "/home", "/dev/shm"):
                self._made.add(d)
                out += ["--perms", "0755", "--dir", d]
        return out

    def _system_view(self) -> list[str]:
        args: list[str] = ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = "/" + top
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        if os.path.isdir("/opt"):
            args += ["--ro-bind", "/opt", "/opt"]
        for path in python_dirs():
            args += [*self._parents(path), "--ro-bind", path, path]
        return args

    def _prepare(self, cell: Cell) -> None:
        super()._prepare(cell)
        if self.drop_to is not None:
            for path in (cell.dir, cell.home, cell.tmp):
                os.chown(path, *self.drop_to)

    def give(self, cell: Cell, path: str) -> None:
        if self.drop_to is not None:
            os.chown(path, *self.drop_to)

    def command(self, cell: Cell, argv: list[str], *, extra_binds: tuple[str, ...] = ()) -> list[str]:
        cmd = [self.bwrap, *self._namespace_args()]
        tmp = self._made.copy()
        # the scratch mounts first: the view may live below them (a venv in /tmp, /home/USER)
        # /etc: the allowlisted entries of the host's, copied into one folder (etc_view.py)
        cmd += [
            *self._scratch_mounts(),
            "--ro-bind",
            self._etc.path(),
            "/etc",
            *self._view,
            *self._binds(cell, extra_binds),
        ]
        self._made = tmp  # the parents under /tmp and /run are made anew in every cell
        cmd += ["--chdir", self.config.workspace, "--", *self._drop_args()]
        return [*cmd, *argv]

    def _namespace_args(self) -> list[str]:
        args = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "coderunner",
        ]
        if self.drop_to is None:  # a user: a user namespace of its own, uid 1000 in it
            args += ["--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL"]
        else:  # root: only what setting up over the code's files and dropping to its uid need;
            # all gone with the drop (a uid change clears them; no-new-privs keeps them gone)
            args += [
                "--cap-drop",
                "ALL",
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
                "--cap-add",
                "CAP_DAC_OVERRIDE",
            ]
        return args

    def _scratch_mounts(self) -> list[str]:
        size = str(self.config.tmp_size)
        return [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "01777",
            "--size",
            size,
            "--tmpfs",
            "/tmp",
            "--perms",
            "01777",
            "--size",
            size,
            "--tmpfs",
            "/dev/shm",
            "--tmpfs",
            "/run",
            "--dir",
            "/home",
        ]

    def _binds(self, cell: Cell, extra_binds: tuple[str, ...]) -> list[str]:
        """The workspace, the cell's dir, the base home and the shares, each with its parents."""
        c = self.config
        args: list[str] = []
        for path in (c.workspace, cell.dir):
            args += [*self._parents(path), "--bind", path, path]
        if c.base_home and os.path.isdir(c.base_home):
            args += [*self._parents(c.base_home), "--ro-bind", c.base_home, c.base_home]
        for path in c.shares:
            if os.path.lexists(path):
                args += [*self._parents(path), "--bind", path, path]
        for path in [*c.shares_ro, *extra_binds]:
            if os.path.lexists(path):
                args += [*self._parents(path), "--ro-bind", path, path]
        return args

    def _drop_args(self) -> list[str]:
        """As root: the command that drops to the code's uid before running the program."""
        if self.drop_to is None:
            return []
        return drop_argv(*self.drop_to, self.setpriv)

    def env(self, cell: Cell, env: dict[str, str]) -> dict[str, str]:
        return {**env, "HOME": cell.home, "TMPDIR": "/tmp"}

    def _wrap_argv(self, cell: Cell, program: str) -> list[str]:
        return self.command(cell, [program])

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.name,
            "tmp_size": self.config.tmp_size,
            "code_uid": self.drop_to[0] if self.drop_to else "the gateway's, in a user namespace",
        }


class SetidJail(Jail):
    name = "setid"

    def __init__(self, config: JailConfig) -> None:
        if os.geteuid() != 0:
            raise IsolationUnavailable(
                "--isolation setid needs the gateway to run as root (it drops every script and kernel to --code-uid)"
            )
        if config.code_uid == 0:
            raise IsolationUnavailable("--code-uid 0 would run code as root: pick an unprivileged uid")
        config.code_uid = 1000 if config.code_uid is None else config.code_uid
        config.code_gid = 1000 if config.code_gid is None else config.code_gid
        self.code_uid: int = config.code_uid
        self.code_gid: int = config.code_gid
        super().__init__(config)
        os.chmod(config.runtime_dir, 0o711)  # cells are reached by path; their own mode guards them
        ws = os.stat(config.workspace)
        if ws.st_uid == 0:  # a fresh volume: the code must be able to write it
            os.chown(config.workspace, self.code_uid, self.code_gid)
        self._gids = count(GID_BASE + (os.getpid() % 1000) * 1000)
        self.setpriv = shutil.which("setpriv")

    def _prepare(self, cell: Cell) -> None:
        cell.gid = next(self._gids)
        os.chown(cell.dir, 0, cell.gid)
        os.chmod(cell.dir, 0o2770)  # root's, its group's only; new files keep the group
        super()._prepare(cell)
        for path in (cell.home, cell.tmp):
            os.chown(path, self.code_uid, cell.gid)

    def give(self, cell: Cell, path: str) -> None:
        # explicitly: without CAP_FSETID the directory's setgid bit may not have stuck
        os.chown(path, 0, cell.gid if cell.gid is not None else 0)

    def wrapper(self, cell: Cell, program: str, env: dict[str, str]) -> str:
        path = super().wrapper(cell, program, env)
        os.chmod(path, 0o750)  # root runs it; the cell's group may read it
        return path

    def _wrap_prelude(self, cell: Cell) -> str:
        # the launcher (root) made the profile dir it passes (Chromium's --user-data-dir) in
        # the shared /tmp: hand it to the cell's identity before dropping to it
        return (
            'for a in "$@"; do case "$a" in --user-data-dir=*) '
            f'chown -R {self.code_uid}:{cell.gid} "${{a#--user-data-dir=}}";; esac; done\n'
        )

    def command(self, cell: Cell, argv: list[str], *, extra_binds: tuple[str, ...] = ()) -> list[str]:
        # The drop happens after exec, in setpriv (or DROP), never in the gateway's fork: a
        # fork already at the code's uid but not yet exec'd is a copy of the gateway that
        # code could SIGSTOP, and Popen would wait on it, holding the gateway's loop, for good
        return [*drop_argv(self.code_uid, self._gid(cell), self.setpriv), *argv]

    def popen_kwargs(self, cell: Cell) -> dict[str, Any]:
        return {"start_new_session": True, "umask": 0o022}

    @staticmethod
    def _gid(cell: Cell) -> int:
        if cell.gid is None:
            raise RuntimeError(f"cell {cell.id} has no group: it was not opened by this jail")
        return cell.gid

    def kill(self, cell: Cell) -> None:
        super().kill(cell)
        if cell.gid is not None:
            kill_group(cell.gid)

    def _wrap_argv(self, cell: Cell, program: str) -> list[str]:
        return self.command(cell, [program])

    def describe(self) -> dict[str, Any]:
        return {"mode": self.name, "code_uid": self.code_uid}


def drop_argv(uid: int, gid: int, setpriv: str | None) -> list[str]:
    """The command that, run as root, becomes ``uid``/``gid`` (no other groups, no
    capabilities, no-new-privileges, umask 022 inherited) and execs what follows it."""
    if setpriv:
        return [
            setpriv,
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--",
        ]
    return [sys.executable, "-S", "-c", DROP, str(uid), str(gid)]


class _Remover:
    """Removes folders in a thread of its own, started with the jail: a thread started later
    may be refused, when code holds every process the sandbox may have (RLIMIT_NPROC)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = threading.Thread(target=self._run, name="cell-remover", daemon=True)
        try:
            self._thread.start()
        except RuntimeError:  # no thread to be had: removed in place
            self._thread = None

    def remove(self, path: str) -> None:
        if self._thread is None:
            shutil.rmtree(path, ignore_errors=True)
        else:
            self._queue.put(path)

    def _run(self) -> None:
        while True:
            shutil.rmtree(self._queue.get(), ignore_errors=True)


def write_cell_file(path: str, text: str) -> None:
    """Create ``path`` (it must not exist), readable by the gateway and the cell's group only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def kill_group(gid: int, rounds: int = 50) -> None:
    """SIGKILL every process whose real or effective gid is ``gid``, until none is left
    (a process may fork while we look)."""
    for _ in range(rounds):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"Gid:"):
                            real, eff = (int(x) for x in line.split()[1:3])
                            if gid in (real, eff):
                                found = True
                                os.kill(int(entry), signal.SIGKILL)
                            break
            except (OSError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.001)


def _has_mount_below(path: str) -> bool:
    prefix = path.rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            return any(line.split()[4].startswith(prefix) for line in f)
    except OSError:
        return False


def python_dirs() -> list[str]:
    """The directories this Python and its packages live in, and nothing else: never the
    current directory, an empty or relative ``sys.path`` entry, or a home directory above
    the packages (``PYTHONPATH=:`` run from ``$HOME`` must not expose ``$HOME``)."""
    import importlib.util

    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for name in ("coderunner_gateway", "ipykernel", "jupyter_client", "IPython"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            wanted.add(os.path.dirname(os.path.dirname(spec.origin)))
    for entry in sys.path:
        if os.path.isabs(entry) and os.path.basename(entry.rstrip("/")) in ("site-packages", "dist-packages"):
            wanted.add(entry)
    homes = {os.path.realpath(os.path.expanduser("~")), "/", "/home", "/root", "/tmp"}
    keep: list[str] = []
    for p in sorted({os.path.realpath(w) for w in wanted if w and os.path.isabs(w) and os.path.isdir(w)}):
        if p in homes or p == "/usr" or p.startswith(("/usr/", "/etc/", "/opt/", "/proc/", "/dev/")):
            continue
        if not any(p == k or p.startswith(k + "/") for k in keep):
            keep.append(p)
    return keep


def no_new_privs_and_undumpable() -> None:
    """For the gateway itself: other processes of its uid cannot ptrace it or read its
    /proc/PID/{mem,environ,fd}, and nothing it runs gains privileges through exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _bwrap_works(config: JailConfig) -> str | None:
    """None when a bwrap cell starts here, else why not."""
    jail_bin = shutil.which(config.bwrap)
    if jail_bin is None:
        return "bubblewrap (bwrap) is not installed"
    probe = BwrapJail.__new__(BwrapJail)
    probe.config = config
    probe.bwrap = jail_bin
    probe._view = []
    cmd = [
        jail_bin,
        "--unshare-user",
        "--unshare-pid",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--",
        "/bin/true" if os.path.exists("/bin/true") else "true",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        return (proc.stderr or "").strip().splitlines()[-1:][0] if proc.stderr.strip() else f"exit {proc.returncode}"
    return None


def make_jail(config: JailConfig) -> Jail:
    mode = config.mode
    if mode == "none":
        log.warning("--isolation none: code runs as the gateway and can read its token and reach other sessions")
        return Jail(config)
    if mode == "setid":
        return SetidJail(config)
    why = _bwrap_works(config)
    if mode == "bwrap":
        if why:
            raise IsolationUnavailable(f"--isolation bwrap: {why}")
        return BwrapJail(config)
    # auto
    if why is None:
        return BwrapJail(config)
    if os.geteuid() == 0:
        return SetidJail(config)
    raise IsolationUnavailable(
        f"no isolation for the code is available here ({why}): install bubblewrap, run the gateway as root "
        "(--isolation setid), or pass --isolation none to run code unisolated"
    )


def describe(jail: Jail) -> str:
    return json.dumps(jail.describe())
