"""The local runtime's bubblewrap view: the namespaces, the read-only system and Python, the scratch
filesystems, and the dirs above a bind mount, as bwrap options (:class:`.local.LocalRuntime` puts
them together with the workspace, mounts and the gateway's command)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import _proc
from ._argv import Command
from .base import GATEWAY_DIR, RUN_DIR, SANDBOX_HOME

HOST_PROC = f"{GATEWAY_DIR}/hostproc"  # a procfs the gateway's cells may mount a fresh /proc beside
TMPFS_BYTES = 1 << 30  # each of the outer sandbox's /tmp, /home, /run (tmpfs in host RAM)
# Where the gateway's Python and packages live (run by that Python); see python_dirs
PYTHON_DIRS = r"""
import importlib.util, json, os, sys
want = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
for name in ("coderunner_gateway", "ipykernel", "jupyter_client", "IPython"):
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.origin:
        want.add(os.path.dirname(os.path.dirname(spec.origin)))
want |= {p for p in sys.path if os.path.isabs(p) and os.path.basename(p.rstrip("/")) in ("site-packages", "dist-packages")}
homes = {os.path.realpath(os.path.expanduser("~")), os.path.realpath(os.getcwd()), "/", "/home", "/root", "/tmp"}
keep = []
for p in sorted({os.path.realpath(w) for w in want if w and os.path.isabs(w) and os.path.isdir(w)}):
    if p not in homes and not any(p == k or p.startswith(k + "/") for k in keep):
        keep.append(p)
print(json.dumps(keep))
"""
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
    "pki",
    "crypto-policies",
)


def namespaces(cmd: Command, owner: tuple[int, int] | None, network: bool) -> None:
    """Who the sandbox runs as and what it shares with the host."""
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        cmd.add_flag(flag, True)
    cmd.add_flag("--unshare-cgroup-try", True)
    cmd.add_simple_arg("--hostname", "coderunner")
    cmd.add_flag("--clearenv", True)
    if owner is None:  # a user: its own user namespace, where it is uid 1000 without capabilities
        cmd += ["--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL"]
    else:  # root: set up as root, keep only what dropping to the gateway's uid needs
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    cmd.add_flag("--unshare-net", not network)


class DirsAbove:
    """``--dir`` for the dirs above a path, traversable: bwrap makes them 0700, which
    as root (the gateway then runs as another uid) would lock the gateway out. Each once."""

    def __init__(self) -> None:
        self.made: set[str] = set()

    def __call__(self, path: str) -> list[str]:
        out: list[str] = []
        for parent in reversed(Path(path).parents[:-1]):
            p = str(parent)
            if (
                p not in self.made
                and p not in ("/usr", "/tmp", "/home", "/run", "/proc", "/dev")
                and not p.startswith(("/usr/", "/proc/", "/dev/"))
            ):
                self.made.add(p)
                out += ["--perms", "0755", "--dir", p]
        return out


def system_view(cmd: Command, above: DirsAbove) -> None:
    """/usr and its links, and the few /etc files programs need, read-only."""
    cmd += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        if os.path.lexists(f"/etc/{name}"):
            cmd += [*above(f"/etc/{name}"), "--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]


def scratch(cmd: Command) -> None:
    """A fresh /proc and /dev, sized tmpfs for /tmp, /home and /run, the gateway's dir and the host's procfs."""
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--perms", "01777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    cmd += ["--size", str(TMPFS_BYTES), "--tmpfs", "/home", "--perms", "01777", "--dir", SANDBOX_HOME]
    cmd += ["--size", str(TMPFS_BYTES), "--tmpfs", "/run", "--dir", GATEWAY_DIR]
    cmd += ["--bind", "/proc", HOST_PROC]


def without_gateway_mounts(options: list[str]) -> list[str]:
    """The sandbox's bwrap options minus what only the gateway may see."""
    out: list[str] = []
    i = 0
    while i < len(options):
        if (
            options[i] in ("--bind", "--ro-bind")
            and i + 2 < len(options) + 1
            and options[i + 2] in (RUN_DIR, HOST_PROC)
        ):
            i += 3
            continue
        out.append(options[i])
        i += 1
    return out


def python_dirs(python: str) -> list[str]:
    """The gateway's Python, its packages and (editable) source: never an empty or relative
    ``sys.path`` entry, the current directory, or a home above them (``PYTHONPATH=:``)."""
    probe = _proc.run([python, "-c", PYTHON_DIRS], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return [p for p in json.loads(probe.stdout) if not p.startswith(("/usr/", "/etc/")) and p != "/usr"]
