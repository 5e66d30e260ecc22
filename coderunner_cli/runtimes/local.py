"""``local``: the gateway in a bubblewrap process sandbox on this machine.

Weaker than a VM or a container, and said so: it shares the host kernel and
uses no cgroups (``--cpus``/``--memory`` are not enforced). Two layers:

* the outer sandbox holds the gateway: only system directories and the
  Python that runs it are visible, read-only; the user's home and its
  secrets are not; its own user (uid 1000, no capabilities), PID, IPC and
  UTS namespaces; it dies with its supervisor (a waiting shell). bwrap
  itself starts from an empty environment, so nothing of the caller's
  (API keys, ``SSH_AUTH_SOCK``) is in any ``/proc/PID/environ`` inside. The
  token and the environment file reach the gateway on inherited file
  descriptors, never as files in its view.
* the gateway runs every script and kernel in a cell of its own
  (``--isolation bwrap``, see the gateway's ``jail.py``): nested namespaces
  with no view of the gateway, its socket or other sessions. For that it
  needs a procfs without bwrap's read-only overmounts somewhere in its mount
  namespace: the host's ``/proc`` is bound at a path only it can see.

Run as root, bwrap would map the sandbox's uid to host root (a setuid file
left in the workspace would be setuid root on the host): then the outer
sandbox is set up as root and the gateway dropped to an unprivileged uid
(``$SUDO_UID``, else ``nobody``) before it starts.

The bwrap options of the sandbox's view are _bwrap.py's; this module is the runtime that starts,
supervises, stops and enters that sandbox, kept whole over ~300 lines because its /proc and pid-file
helpers serve only those methods.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from .. import paths
from ..errors import RuntimeUnavailable, SandboxNotRunning, UsageError
from . import _bwrap, _proc
from ._argv import Command
from .base import (
    GATEWAY_DIR,
    RUN_DIR,
    SANDBOX_HOME,
    SANDBOX_WORKSPACE,
    SSH_SOCK,
    USER_SKILLS,
    ContainerSpec,
    Status,
    gateway_args,
)

SUPERVISOR = "coderunner-sandbox"  # $0 of the parent shell: how `ps` and we recognise it
TOKEN_FD, ENV_FD = 3, 4
# The supervisor: opens the token and environment files for bwrap to pass on, then waits for it
SUPERVISE = 'exec 3<"$1" 4<"$2"; shift 2; bwrap_="$1"; shift; "$bwrap_" "$@"; exit $?'
# As root: drop to the gateway's uid inside the outer sandbox, before anything of ours runs
DROP = (
    "import os, sys; u, g = int(sys.argv[1]), int(sys.argv[2]); os.setgroups([]); os.setgid(g); os.setuid(u); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)
MAX_PROCESSES = 1024  # processes the sandbox may add to its uid's (RLIMIT_NPROC; no cgroups)


class LocalRuntime:
    name = "local"
    isolation = "process sandbox (bubblewrap): shares the host kernel, no resource limits; weaker than a VM"
    resumable = False  # nothing outlives `stop`: `up` starts the sandbox again, with the same workspace
    enforces_limits = False  # no cgroups
    needs_image = False  # the host's Python runs the gateway

    def __init__(
        self,
        *,
        state_dir: Path,
        workspace: Path,
        bwrap: str = "bwrap",
        python: str | None = None,
    ) -> None:
        """``state_dir`` holds the sandbox's pid file, run dir, log and secrets; ``workspace`` is
        its /workspace. The sandbox's own: nothing here looks at the CLI's global paths."""
        self.bwrap = shutil.which(bwrap) or bwrap
        self.python = python or os.environ.get("CODERUNNER_GATEWAY_PYTHON") or sys.executable
        self.state_dir = state_dir
        self.workspace = workspace
        self.log_file = self.state_dir / "gateway.log"
        self.env_file = self.state_dir / "secrets" / "sandbox.env"

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
                "`pip install coderunner-gateway` there, or set CODERUNNER_GATEWAY_PYTHON"
            )

    def has_image(self, image: str) -> bool:
        return True  # no image: the host's Python runs the gateway

    def pull(self, image: str) -> None:
        return None

    def build(self, tag: str, context: str, build_args: dict[str, str]) -> None:
        raise UsageError("the local runtime uses no image: build one for docker, podman or apple (--runtime)")

    # -- lifecycle ---------------------------------------------------------------
    def status(self, name: str) -> Status:
        pid = _pid_file(self.state_dir, name)
        if pid and _is_sandbox(pid):
            return Status("running", f"supervisor pid {pid}")
        return Status("stopped" if self.workspace.exists() else "missing")

    def create(self, spec: ContainerSpec) -> str:
        run_dir = spec.run_dir or paths.ensure_private_dir(self.state_dir / "run")
        workspace = spec.workspace or self.workspace
        workspace.mkdir(parents=True, exist_ok=True)
        ready = run_dir / "ready.json"
        ready.unlink(missing_ok=True)
        owner = gateway_owner()
        if owner is not None:  # root: the gateway's uid owns what it writes
            for path in (workspace, run_dir):
                _chown_tree(path, *owner)
        # bwrap --die-with-parent needs a parent that lives as long as the
        # sandbox: a shell that waits for it. Killing it (even -9) ends all.
        argv = self.argv(spec, run_dir)
        paths.write_private(
            _argv_file(self.state_dir, spec.name), json.dumps(argv)
        )  # `shell` reuses the sandbox's view
        env_file = spec.env_file if spec.env_file is not None and spec.env_file.exists() else "/dev/null"
        cmd = ["sh", "-c", SUPERVISE, SUPERVISOR, str(spec.secrets_dir / "token"), str(env_file), *argv]
        log = self.log_file
        # an empty environment: bwrap's own process (pid 1 inside) keeps the one it was given
        # no cgroups here: the sandbox may start MAX_PROCESSES processes beyond what its uid runs now
        uid = owner[0] if owner is not None else os.getuid()
        proc = _proc.spawn(
            cmd,
            log_path=str(log),
            env={"PATH": os.environ.get("PATH") or "/usr/bin:/bin"},
            max_processes=_processes_of(uid) + MAX_PROCESSES,
        )
        paths.write_private(self.state_dir / f"{spec.name}.pid", str(proc.pid))
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
        """bwrap's command line for the outer sandbox, ending with the gateway's."""
        owner = gateway_owner()
        cmd = Command([self.bwrap])
        _bwrap.namespaces(cmd, owner, spec.network)
        above = _bwrap.DirsAbove()
        _bwrap.system_view(cmd, above)
        _bwrap.scratch(cmd)
        for path in _bwrap.python_dirs(self.python):
            cmd += [*above(path), "--ro-bind", path, path]
        cmd += ["--bind", str(spec.workspace or self.workspace), SANDBOX_WORKSPACE, "--bind", str(run_dir), RUN_DIR]
        if spec.skills_dir is not None:
            cmd += ["--ro-bind", str(spec.skills_dir), USER_SKILLS]
        for m in spec.mounts:
            cmd += [*above(m.target), "--ro-bind" if m.read_only else "--bind", m.source, m.target]
        if spec.ssh_agent:
            cmd += ["--dir", os.path.dirname(SSH_SOCK), "--bind", spec.ssh_agent, SSH_SOCK]
            cmd += ["--setenv", "SSH_AUTH_SOCK", SSH_SOCK]
        for key, value in self._environment().items():
            cmd += ["--setenv", key, value]
        return [*cmd, "--chdir", SANDBOX_WORKSPACE, "--", *self._gateway(spec, owner)]

    def _environment(self) -> dict[str, str]:
        """All the environment the sandbox has (bwrap clears the rest)."""
        return {
            "PATH": f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": SANDBOX_HOME,
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            "TERM": os.environ.get("TERM", "xterm"),
            "CODERUNNER_SANDBOX": "local",
        }

    def _gateway(self, spec: ContainerSpec, owner: tuple[int, int] | None) -> list[str]:
        gateway = gateway_args(
            spec,
            program=(self.python, "-m", "coderunner_gateway"),
            isolation="bwrap",
            share_mounts=True,
            secret_fds=(TOKEN_FD, ENV_FD),
            host="127.0.0.1",
            port=spec.host_port or 0,  # the host's network: any free loopback port, read back from the ready file
            ready_file=f"{RUN_DIR}/ready.json",
        )
        if owner is None:
            return gateway
        return [self.python, "-S", "-c", DROP, str(owner[0]), str(owner[1]), *gateway]

    def resume(self, name: str) -> str:
        raise SandboxNotRunning("the local sandbox is not running")  # `up` creates it again

    def stop(self, name: str, timeout: float) -> None:
        """SIGTERM to the gateway alone, as when it runs by itself: it ends running code
        (streams end with ``died``) and exits, and the sandbox with it."""
        pid = _pid_file(self.state_dir, name)
        if not pid or not _is_sandbox(pid):
            return
        gateways = [p for p in _proc.descendants(pid) if _is_gateway(_cmdline(p))]
        for p in gateways or [pid]:
            _signal(p, signal.SIGCONT)  # a stopped gateway would otherwise wait out the timeout
            _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_sandbox(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_sandbox(pid):
            _signal(pid, signal.SIGKILL)
        (self.state_dir / f"{name}.pid").unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        self.stop(name, 10)
        shutil.rmtree(self.workspace, ignore_errors=True)

    def logs(self, name: str, follow: bool, tail: int | None) -> int:
        log = self.log_file
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
        """A new bwrap with the running sandbox's filesystem, workspace and environment, but
        not the gateway's run dir or procfs. (Joining the gateway's own namespaces would need
        setns into bwrap's user namespace, which the kernel refuses here.) It keeps
        ``--new-session``: it talks to a pseudo-terminal we relay, so a TIOCSTI from inside
        reaches only that, never the terminal this command was started from."""
        if self.status(name).state != "running":
            raise SandboxNotRunning()
        saved = json.loads(_argv_file(self.state_dir, name).read_text())
        options = _bwrap.without_gateway_mounts(saved[: saved.index("--")])
        env_file = self.env_file
        if env_file.exists():
            options += ["--ro-bind", str(env_file), f"{GATEWAY_DIR}/sandbox.env"]
        load_env = f'set -a; [ -r {GATEWAY_DIR}/sandbox.env ] && . {GATEWAY_DIR}/sandbox.env; set +a; exec "$@"'
        cmd = [*options, "--", "bash", "-c", load_env, "coderunner-shell", *argv]
        if "--cap-add" in options:  # root: the shell too runs as the gateway's uid
            owner = gateway_owner() or (65534, 65534)
            cmd = [
                *options,
                "--",
                self.python,
                "-S",
                "-c",
                DROP,
                str(owner[0]),
                str(owner[1]),
                "/bin/bash",
                "-c",
                load_env,
                "coderunner-shell",
                *argv,
            ]
        if sys.stdin.isatty():  # a terminal: the relayed pty is the shell's own, job control works
            cmd = [a for a in cmd if a != "--new-session"]
        return _proc.interactive(
            cmd,
            env={"PATH": os.environ.get("PATH") or "/usr/bin:/bin", "TERM": os.environ.get("TERM", "xterm")},
            pty=True,
        )


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
    return count


def gateway_owner() -> tuple[int, int] | None:
    """Root: the unprivileged uid/gid the gateway runs as (the sudoer's, else nobody's).
    A user: None (bwrap's user namespace maps the user to uid 1000)."""
    if os.geteuid() != 0:
        return None
    uid = int(os.environ.get("SUDO_UID") or 0) or 65534
    gid = int(os.environ.get("SUDO_GID") or 0) or 65534
    return uid, gid


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(dirpath, name), uid, gid)


def _is_gateway(cmdline: bytes) -> bool:
    args = cmdline.split(b"\0")
    return b"-m" in args[:3] and b"coderunner_gateway" in args[:4] and not args[0].endswith(b"bwrap")


def _argv_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.bwrap.json"


def _pid_file(state_dir: Path, name: str) -> int | None:
    try:
        return int((state_dir / f"{name}.pid").read_text())
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


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
