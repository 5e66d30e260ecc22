"""``local``: the gateway in a bubblewrap process sandbox on this machine.

Weaker than a VM or a container, and said so: it shares the host kernel and
uses no cgroups (``--cpus``/``--memory`` are not enforced). What it does:
only system directories and the Python that runs the gateway are visible,
read-only; the user's home and its secrets are not; a private writable
workspace; its own user (uid 1000, no capabilities), PID, IPC and UTS
namespaces; it dies with its bwrap parent; ``--no-network`` gives it an empty
network namespace and the gateway listens on a unix socket instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from .. import paths
from ..errors import RuntimeUnavailable, SandboxNotRunning, UsageError
from . import _proc
from .base import (
    RUN_DIR,
    SANDBOX_HOME,
    SANDBOX_WORKSPACE,
    SECRETS,
    SSH_SOCK,
    USER_SKILLS,
    ContainerSpec,
    Status,
    gateway_args,
)

SUPERVISOR = "coderunner-sandbox"  # $0 of the parent shell: how `ps` and we recognise it
ETC_FILES = ("resolv.conf", "hosts", "nsswitch.conf", "passwd", "group", "localtime", "ssl", "ca-certificates",
             "ca-certificates.conf", "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts",
             "mime.types", "os-release", "gai.conf", "host.conf", "protocols", "services", "matplotlibrc",
             "chromium", "chromium.d", "pki", "crypto-policies")


class LocalRuntime:
    name = "local"
    isolation = "process sandbox (bubblewrap): shares the host kernel, no resource limits; weaker than a VM"

    def __init__(self, bwrap: str = "bwrap", python: str | None = None) -> None:
        self.bwrap = shutil.which(bwrap) or bwrap
        self.python = python or os.environ.get("CODERUNNER_GATEWAY_PYTHON") or sys.executable

    # -- readiness -------------------------------------------------------------
    def problem(self) -> str | None:
        if sys.platform != "linux":
            return "the local runtime needs Linux (bubblewrap)"
        if not shutil.which(self.bwrap):
            return "bubblewrap is not installed: `sudo apt-get install bubblewrap`"
        return None

    def prepare(self, timeout: float) -> None:
        if problem := self.problem():
            raise RuntimeUnavailable(problem)
        probe = _proc.run([self.python, "-c", "import coderunner_gateway"], check=False)
        if probe.returncode != 0:
            raise RuntimeUnavailable(
                f"the local runtime runs the gateway with {self.python}, which cannot import coderunner_gateway: "
                "`pip install coderunner-gateway` there, or set CODERUNNER_GATEWAY_PYTHON")

    def has_image(self, image: str) -> bool:
        return True  # no image: the host's Python runs the gateway

    def pull(self, image: str) -> None:
        return None

    def build(self, tag: str, context: str, build_args: dict[str, str]) -> None:
        raise UsageError("the local runtime uses no image: build one for docker, podman or apple (--runtime)")

    # -- lifecycle ---------------------------------------------------------------
    def status(self, name: str) -> Status:
        pid = _pid_file(name)
        if pid and _is_sandbox(pid):
            return Status("running", f"supervisor pid {pid}")
        return Status("stopped" if paths.workspace().exists() else "missing")

    def create(self, spec: ContainerSpec) -> str:
        run_dir = spec.run_dir or paths.ensure_private_dir(paths.home() / "run")
        ready = run_dir / "ready.json"
        ready.unlink(missing_ok=True)
        # bwrap --die-with-parent needs a parent that lives as long as the
        # sandbox: a shell that waits for it. Killing it (even -9) ends all.
        argv = self.argv(spec, run_dir)
        paths.write_private(_argv_file(spec.name), json.dumps(argv))  # `shell` reuses the sandbox's view
        cmd = ["sh", "-c", 'bwrap_="$1"; shift; "$bwrap_" "$@"; exit $?', SUPERVISOR, *argv]
        log = paths.log_file()
        proc = _proc.spawn(cmd, log_path=str(log))
        paths.write_private(paths.home() / f"{spec.name}.pid", str(proc.pid))
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeUnavailable(f"the local sandbox exited with {proc.returncode}: {' | '.join(tail)}")
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeUnavailable(f"the local sandbox did not start within 60s; see {log}")
            time.sleep(0.02)
        url = json.loads(ready.read_text())["url"]
        if url.startswith("unix:"):  # a path inside the sandbox: map it to the host
            url = "unix:" + str(run_dir / Path(url[5:]).name)
        return url

    def argv(self, spec: ContainerSpec, run_dir: Path) -> list[str]:
        workspace = spec.workspace or paths.workspace()
        workspace.mkdir(parents=True, exist_ok=True)
        cmd = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--unshare-user", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL",
               "--hostname", "coderunner", "--clearenv"]
        if not spec.network:
            cmd.append("--unshare-net")
        cmd += ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = Path("/") / top
            if path.is_symlink():
                cmd += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                cmd += ["--ro-bind", str(path), str(path)]
        for name in ETC_FILES:
            if os.path.lexists(f"/etc/{name}"):
                cmd += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/home", "--dir", SANDBOX_HOME,
                "--tmpfs", "/run"]
        for path in self._python_dirs():
            cmd += ["--ro-bind", path, path]
        cmd += ["--bind", str(workspace), SANDBOX_WORKSPACE, "--bind", str(run_dir), RUN_DIR,
                "--ro-bind", str(spec.secrets_dir), SECRETS]
        if spec.skills_dir is not None:
            cmd += ["--ro-bind", str(spec.skills_dir), USER_SKILLS]
        for m in spec.mounts:
            cmd += ["--ro-bind" if m.read_only else "--bind", m.source, m.target]
        if spec.ssh_agent:
            cmd += ["--dir", os.path.dirname(SSH_SOCK), "--bind", spec.ssh_agent, SSH_SOCK,
                    "--setenv", "SSH_AUTH_SOCK", SSH_SOCK]
        env = {"PATH": f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": SANDBOX_HOME,
               "LANG": "C.UTF-8", "USER": "sandbox", "TERM": os.environ.get("TERM", "xterm"),
               "CODERUNNER_SANDBOX": "local"}
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        gateway = gateway_args(spec, host="127.0.0.1")
        if spec.network:  # the host's network: any free loopback port, read back from the ready file
            gateway[gateway.index("--port") + 1] = str(spec.host_port or 0)
        return [*cmd, "--chdir", SANDBOX_WORKSPACE, "--", self.python, "-m", "coderunner_gateway", *gateway[1:],
                "--ready-file", f"{RUN_DIR}/ready.json"]

    def _python_dirs(self) -> list[str]:
        """The gateway's Python, its packages and (editable) source, nothing else of $HOME."""
        probe = _proc.run([self.python, "-c", (
            "import sys, os, json, importlib.util as u\n"
            "spec = u.find_spec('coderunner_gateway')\n"
            "pkg = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else None\n"
            "print(json.dumps([sys.prefix, sys.base_prefix, pkg] + [p for p in sys.path if p]))")])
        keep: list[str] = []
        for p in json.loads(probe.stdout):
            if not p or not os.path.isdir(p):
                continue
            real = os.path.realpath(p)
            if real.startswith(("/usr/", "/etc/")) or real == "/usr":
                continue
            if not any(real == k or real.startswith(k + "/") for k in keep):
                keep = [k for k in keep if not k.startswith(real + "/")] + [real]
        return keep

    def resume(self, name: str) -> str:
        raise SandboxNotRunning("the local sandbox is not running")  # `up` creates it again

    def stop(self, name: str, timeout: float) -> None:
        pid = _pid_file(name)
        if not pid or not _is_sandbox(pid):
            return
        gateways = [p for p in _descendants(pid) if b"coderunner_gateway" in _cmdline(p)]
        for p in gateways or [pid]:
            _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_sandbox(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_sandbox(pid):
            _signal(pid, signal.SIGKILL)
        (paths.home() / f"{name}.pid").unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        self.stop(name, 10)
        shutil.rmtree(paths.workspace(), ignore_errors=True)

    def logs(self, name: str, follow: bool, tail: int | None) -> int:
        log = paths.log_file()
        if not log.exists():
            return 0
        with open(log, "rb") as f:
            lines = f.readlines()
            out = sys.stdout.buffer
            out.writelines(lines[-tail:] if tail else lines)
            out.flush()
            while follow:
                chunk = f.read()
                if chunk:
                    out.write(chunk)
                    out.flush()
                elif self.status(name).state != "running":
                    return 0
                else:
                    time.sleep(0.2)
        return 0

    def exec_interactive(self, name: str, argv: list[str]) -> int:
        """A new bwrap with the running sandbox's filesystem, workspace and environment.
        (Joining the gateway's own namespaces would need setns into bwrap's user
        namespace, which the kernel refuses here.)"""
        if self.status(name).state != "running":
            raise SandboxNotRunning()
        saved = json.loads(_argv_file(name).read_text())
        options = [a for a in saved[:saved.index("--")] if a != "--new-session"]  # keep the terminal
        load_env = f'set -a; [ -r {SECRETS}/sandbox.env ] && . {SECRETS}/sandbox.env; set +a; exec "$@"'
        return _proc.interactive([*options, "--", "bash", "-c", load_env, "coderunner-shell", *argv])


def _argv_file(name: str) -> Path:
    return paths.home() / f"{name}.bwrap.json"


def _pid_file(name: str) -> int | None:
    try:
        return int((paths.home() / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""




def _is_sandbox(pid: int) -> bool:
    cmd = _cmdline(pid)
    if not cmd:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return SUPERVISOR.encode() in cmd.split(b"\0")[:4]


def _descendants(root: int) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        frontier += kids
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
