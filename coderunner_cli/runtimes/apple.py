"""``apple``: the gateway in a lightweight VM through Apple's ``container`` CLI (macOS, Apple silicon).

Output shapes differ by version (read from apple/container's sources; the
recorded outputs live in the tests' fixtures). Parsing is lenient: optional
keys, any key order, new keys ignored.

    inspect            >= 1.0: [0].status.state, [0].status.networks[0].ipv4Address
                       0.8-0.12: [0].status (str), [0].networks[0].ipv4Address
                       0.5-0.7:  [0].status (str), [0].networks[0].address
    inspect, unknown   1.x exits 1 ("container not found"); 0.x prints []
    system status      exit 0 when running (``--format json`` from 0.10)
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from typing import Any

from ..errors import CommandFailed, RuntimeTimeout, RuntimeUnavailable, SandboxNotRunning
from . import _proc
from .base import GATEWAY_PORT, RUN_DIR, SANDBOX_WORKSPACE, SECRETS, USER_SKILLS, ContainerSpec, Status, gateway_args
from .docker import free_port


class AppleRuntime:
    name = "apple"
    isolation = "virtual machine (Apple container): its own Linux kernel per sandbox"

    def __init__(self, binary: str = "container") -> None:
        self.binary = binary
        self._version: tuple[int, ...] | None = None

    def version(self) -> tuple[int, ...]:
        if self._version is None:
            out = _proc.run([self.binary, "--version"]).stdout
            m = re.search(r"version\s+(\d+)\.(\d+)(?:\.(\d+))?", out)
            self._version = tuple(int(x or 0) for x in m.groups()) if m else (0, 0, 0)
        return self._version

    def problem(self) -> str | None:
        if not shutil.which(self.binary):
            return ("Apple's `container` is not installed: get it from github.com/apple/container/releases "
                    "(macOS 26 on Apple silicon)")
        return None

    def prepare(self, timeout: float) -> None:
        if problem := self.problem():
            raise RuntimeUnavailable(problem)
        if _proc.run([self.binary, "system", "status"], check=False, timeout=30).returncode == 0:
            return
        try:
            # stdin closed: the first start asks to install a kernel; the flag answers yes
            _proc.run([self.binary, "system", "start", "--enable-kernel-install"], timeout=timeout)
        except RuntimeTimeout:
            raise RuntimeTimeout(
                f"`container system start` did not finish within {timeout:g}s (the first start downloads a "
                "Linux kernel): run it yourself to watch it, or retry with a longer --timeout") from None

    def has_image(self, image: str) -> bool:
        proc = _proc.run([self.binary, "image", "list", "--format", "json"], check=False)
        if proc.returncode != 0:
            return False
        try:
            images = json.loads(proc.stdout or "[]")
        except ValueError:
            return False
        wanted = {image, f"docker.io/library/{image}", f"docker.io/{image}"}
        return any(_image_name(i) in wanted for i in images if isinstance(i, dict))

    def pull(self, image: str) -> None:
        _proc.run([self.binary, "image", "pull", image], timeout=3600, progress=True,
                  hint="build it with `coderunner build` or pass --image")

    def _inspect(self, name: str) -> dict[str, Any] | None:
        proc = _proc.run([self.binary, "inspect", name], check=False)
        if proc.returncode != 0:
            if "not found" in (proc.stderr or "").lower():
                return None  # 1.x
            raise CommandFailed([self.binary, "inspect", name], proc.returncode, proc.stderr or "")
        try:
            items = json.loads(proc.stdout or "[]")
        except ValueError:
            return None
        return items[0] if items and isinstance(items[0], dict) else None  # 0.x: []

    def status(self, name: str) -> Status:
        info = self._inspect(name)
        if info is None:
            return Status("missing")
        state = _state(info)
        return Status("running" if state == "running" else "stopped", state)

    def run_argv(self, spec: ContainerSpec) -> list[str]:
        cmd = [self.binary, "run", "--detach", "--name", spec.name]
        cmd += ["--cpus", f"{int(spec.cpus or 4)}", "--memory", spec.memory or "4g"]
        cmd += ["--volume", f"{spec.secrets_dir}:{SECRETS}:ro"]
        if spec.skills_dir is not None:
            cmd += ["--volume", f"{spec.skills_dir}:{USER_SKILLS}:ro"]
        if spec.workspace is not None:
            cmd += ["--volume", f"{spec.workspace}:{SANDBOX_WORKSPACE}"]
        for m in spec.mounts:
            cmd += ["--volume", f"{m.source}:{m.target}{':ro' if m.read_only else ''}"]
        if spec.ssh_agent:
            cmd.append("--ssh")  # >= 0.4: the agent at /run/host-services/ssh-auth.sock, SSH_AUTH_SOCK set
        if spec.network:
            cmd += ["--publish", f"127.0.0.1:{spec.host_port}:{GATEWAY_PORT}"]
        else:
            cmd += ["--network", "none", "--publish-socket", f"{spec.run_dir}/gateway.sock:{RUN_DIR}/gateway.sock"]
        if self.version() >= (0, 8):
            cmd.append("--init")
        return [*cmd, spec.image, *gateway_args(spec, host="0.0.0.0")]

    def build(self, tag: str, context: str, build_args: dict[str, str]) -> None:
        cmd = [self.binary, "build", "-t", tag, "-f", f"{context}/Dockerfile"]
        for key, value in build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        _proc.run([*cmd, context], timeout=7200, progress=True)

    def create(self, spec: ContainerSpec) -> str:
        if spec.network and not spec.host_port:
            spec.host_port = free_port()
        _proc.run(self.run_argv(spec), timeout=300,
                  hint="is the container system running? `container system status`")
        return self.url(spec.name)

    def url(self, name: str) -> str:
        info = self._inspect(name)
        if info is None:
            raise SandboxNotRunning(f"container {name} does not exist: run `coderunner up`")
        config = info.get("configuration") or {}
        for port in config.get("publishedPorts") or []:
            if port.get("containerPort") == GATEWAY_PORT and port.get("hostPort"):
                return f"http://{port.get('hostAddress') or '127.0.0.1'}:{port['hostPort']}"
        for sock in config.get("publishedSockets") or []:
            path = sock.get("hostPath") or sock.get("source")
            if path:
                return f"unix:{path}"
        if ip := _ip(info):
            return f"http://{ip}:{GATEWAY_PORT}"
        raise SandboxNotRunning(f"container {name} has no address yet: see `coderunner logs`")

    def resume(self, name: str) -> str:
        _proc.run([self.binary, "start", name], timeout=120)
        return self.url(name)

    def stop(self, name: str, timeout: float) -> None:
        proc = _proc.run([self.binary, "stop", name], check=False, timeout=timeout + 30)
        if proc.returncode != 0 and "not found" not in (proc.stderr or "").lower():
            raise CommandFailed([self.binary, "stop", name], proc.returncode, proc.stderr or "")

    def remove(self, name: str) -> None:
        _proc.run([self.binary, "delete", "--force", name], check=False)

    def logs(self, name: str, follow: bool, tail: int | None) -> int:
        return _proc.interactive(_proc.argv(self.binary, "logs", name, follow=follow) +
                                 (["-n", str(tail)] if tail else []), stderr_to_stdout=True)

    def exec_interactive(self, name: str, argv: list[str]) -> int:
        flags = ["-i", "-t"] if sys.stdin.isatty() else ["-i"]
        return _proc.interactive([self.binary, "exec", *flags, name, *argv])


def _state(info: dict[str, Any]) -> str:
    status = info.get("status")
    if isinstance(status, dict):  # >= 1.0
        return str(status.get("state", "unknown"))
    return str(status or "unknown")


def _ip(info: dict[str, Any]) -> str | None:
    status = info.get("status")
    networks = (status.get("networks") if isinstance(status, dict) else None) or info.get("networks") or []
    for net in networks:
        addr = net.get("ipv4Address") or net.get("address")
        if addr:
            return str(addr).split("/")[0]
    return None


def _image_name(image: dict[str, Any]) -> str:
    if "reference" in image:  # <= 0.12
        return str(image["reference"])
    return str((image.get("configuration") or {}).get("name", ""))  # >= 1.0
