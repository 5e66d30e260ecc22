"""``docker`` and ``podman``: the gateway in a container, port published on loopback only."""

from __future__ import annotations

import json
import os
import shutil

from ..errors import CommandFailed, RuntimeUnavailable, SandboxNotRunning
from . import _proc
from ._argv import Command
from ._net import free_port
from .base import (
    GATEWAY_PORT,
    RUN_DIR,
    SANDBOX_WORKSPACE,
    SSH_SOCK,
    USER_SKILLS,
    ContainerSpec,
    Status,
    env_names,
    gateway_args,
)

PIDS_LIMIT = 1024
TMPFS_SIZE = "1g"
GATEWAY_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL")
# /tmp allows exec: the browser's cell starts from a wrapper there (noexec would not stop
# code, which runs what it writes with python or bash anyway)
TMPFS = (
    f"/tmp:rw,nosuid,nodev,exec,size={TMPFS_SIZE}",
    "/run:rw,nosuid,nodev,size=64m",
    "/var/tmp:rw,nosuid,nodev,size=64m",
)


def code_ids() -> tuple[int, int]:
    """The uid/gid code runs as in the container: yours, so workspace files stay yours;
    the image's `sandbox` (1000) when you are root."""
    uid, gid = os.getuid(), os.getgid()
    return (uid, gid) if uid != 0 else (1000, 1000)


class DockerRuntime:
    isolation = "container: shares the host kernel (or Docker Desktop's VM); cgroup limits on CPU, memory, processes"
    resumable = True
    enforces_limits = True
    needs_image = True

    def __init__(self, binary: str = "docker") -> None:
        self.name = os.path.basename(binary)
        self.binary = binary

    def problem(self) -> str | None:
        if not shutil.which(self.binary):
            return f"{self.name} is not installed"
        probe = _proc.run([self.binary, "version", "--format", "{{.Server.Version}}"], check=False, timeout=15)
        if probe.returncode != 0:
            return f"the {self.name} engine is not reachable: {(probe.stderr or '').strip().splitlines()[-1:] or ''}"
        return None

    def prepare(self, timeout: float) -> None:
        if problem := self.problem():
            hint = (
                "start Docker (Docker Desktop, or `sudo dockerd`)" if self.name == "docker" else "check `podman info`"
            )
            raise RuntimeUnavailable(f"{problem}; {hint}")

    def has_image(self, image: str) -> bool:
        return _proc.run([self.binary, "image", "inspect", image], check=False).returncode == 0

    def pull(self, image: str) -> None:
        _proc.run(
            [self.binary, "pull", image],
            timeout=3600,
            progress=True,
            hint=f"build it with `coderunner build --runtime {self.name}` or pass --image",
        )

    def status(self, name: str) -> Status:
        proc = _proc.run([self.binary, "inspect", "--type", "container", name], check=False)
        if proc.returncode != 0:
            return Status("missing")
        try:
            state = json.loads(proc.stdout)[0].get("State", {})
        except (ValueError, IndexError, AttributeError):
            return Status("missing")
        status = str(state.get("Status", "")).lower()
        return Status("running" if status == "running" else "stopped", status)

    def run_argv(self, spec: ContainerSpec) -> list[str]:
        cmd = Command([self.binary, "run", "-d", "--name", spec.name, "--init"])
        cmd.add_simple_arg("--label", "coderunner=1")
        cmd.add_simple_arg("--hostname", "coderunner")
        cmd.add_simple_arg("--cpus", f"{spec.cpus:g}" if spec.cpus else None)
        cmd.add_simple_arg("--memory", spec.memory or None)
        cmd.add_simple_arg("--pids-limit", PIDS_LIMIT)
        cmd.add_simple_arg("--security-opt", "no-new-privileges")
        # the gateway is root with only what running code as another identity needs;
        # the code it runs has no capability at all
        cmd.add_simple_arg("--cap-drop", "ALL")
        cmd.add_args_iterable("--cap-add", GATEWAY_CAPS)
        # nothing of the image is writable; scratch space is sized tmpfs in the sandbox's memory
        cmd.add_flag("--read-only", True)
        cmd.add_args_iterable("--tmpfs", TMPFS)
        if spec.network:
            cmd.add_simple_arg("-p", f"127.0.0.1:{spec.host_port}:{GATEWAY_PORT}")
        else:
            cmd.add_simple_arg("--network", "none")
            cmd.add_simple_arg("-v", f"{spec.run_dir}:{RUN_DIR}")
        cmd.add_simple_arg("-v", f"{spec.workspace}:{SANDBOX_WORKSPACE}" if spec.workspace is not None else None)
        # secrets as environment taken from our own (names only in argv)
        cmd.add_args_iterable("-e", ["CODERUNNER_TOKEN", *env_names(spec)])
        cmd.add_simple_arg("-v", f"{spec.skills_dir}:{USER_SKILLS}:ro" if spec.skills_dir is not None else None)
        cmd.add_args_iterable("-v", [m.volume for m in spec.mounts])
        if spec.ssh_agent:
            cmd.add_simple_arg("-v", f"{spec.ssh_agent}:{SSH_SOCK}")
            cmd.add_simple_arg("-e", f"SSH_AUTH_SOCK={SSH_SOCK}")
        gateway = gateway_args(
            spec,
            isolation="setid",
            code_ids=code_ids(),
            pass_env=True,
            socket_owner=f"{os.getuid()}:{os.getgid()}",
        )
        return [*cmd, spec.image, *gateway]

    def _run_env(self, spec: ContainerSpec) -> dict[str, str]:
        from ..config import read_file

        env = dict(os.environ)
        env["CODERUNNER_TOKEN"] = (spec.secrets_dir / "token").read_text().strip()
        if spec.env_file is not None and spec.env_file.exists():
            env.update(read_file(spec.env_file))
        return env

    def create(self, spec: ContainerSpec) -> str:
        if spec.network and not spec.host_port:
            spec.host_port = free_port()
        if os.getuid() == 0 and spec.workspace is not None:  # the code's uid must write the workspace
            _chown_tree(spec.workspace, *code_ids())
        _proc.run(self.run_argv(spec), timeout=300, env=self._run_env(spec))
        return self.url(spec.name)

    def build(self, tag: str, context: str, build_args: dict[str, str]) -> None:
        cmd = [self.binary, "build", "-t", tag, "-f", os.path.join(context, "Dockerfile")]
        for key, value in build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        _proc.run([*cmd, context], timeout=7200, progress=True)

    def url(self, name: str) -> str:
        proc = _proc.run([self.binary, "inspect", "--type", "container", name])
        info = json.loads(proc.stdout)[0]
        ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
        for binding in ports.get(f"{GATEWAY_PORT}/tcp") or []:
            if binding.get("HostPort"):
                return f"http://127.0.0.1:{binding['HostPort']}"
        for m in info.get("Mounts") or []:
            if m.get("Destination") == RUN_DIR:
                return f"unix:{m['Source']}/gateway.sock"
        raise SandboxNotRunning(
            f"container {name} publishes no gateway port: remove it with `coderunner down --remove`"
        )

    def resume(self, name: str) -> str:
        _proc.run([self.binary, "start", name])
        return self.url(name)

    def stop(self, name: str, timeout: float) -> None:
        try:
            _proc.run([self.binary, "stop", "-t", str(int(timeout)), name], timeout=timeout + 30)
        except CommandFailed as exc:
            if not _proc.says_missing(exc.stderr):
                raise

    def remove(self, name: str) -> None:
        _proc.run([self.binary, "rm", "-f", name], check=False)

    def logs(self, name: str, follow: bool, tail: int | None) -> int:
        cmd = Command([self.binary, "logs", name])
        cmd.add_flag("--follow", follow)
        cmd.add_simple_arg("--tail", tail)
        return _proc.interactive(cmd, stderr_to_stdout=True)

    def exec_interactive(self, name: str, argv: list[str]) -> int:
        import sys

        flags = ["-i", "-t"] if sys.stdin.isatty() else ["-i"]
        return _proc.interactive([self.binary, "exec", *flags, "-w", SANDBOX_WORKSPACE, name, *argv])


def _chown_tree(root, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
