"""``apple``: the gateway in a lightweight VM through Apple's ``container`` CLI (macOS, Apple silicon).

What differs by version (read from apple/container's sources at each tag; the
recorded outputs live in the tests' fixtures, and the tests' double checks
every option against the tables generated from those sources). Parsing is
lenient: optional keys, any key order, new keys ignored.

    run --init                 from 0.10.0 only (an unknown option, exit 64, before)
    run -v FILE:DST            from 0.9 (virtiofs shared directories only before)
    run --ssh                  guest socket /run/host-services/ssh-auth.sock (launchd's agent) up to
                               0.11, /var/host-services/ssh-auth.sock (the caller's $SSH_AUTH_SOCK) from 0.12
    inspect                    >= 1.0: [0].status.state, [0].status.networks[0].ipv4Address
                               0.8-0.12: [0].status (str), [0].networks[0].ipv4Address
                               0.5-0.7:  [0].status (str), [0].networks[0].address
    publishedSockets hostPath  0.x: a file:// URL (percent-encoded); >= 1.0: a path
    inspect, unknown           1.x exits 1 ("container not found"); 0.x prints []
    system status              exit 0 once the API server is registered, kernel or not

Identity: virtiofs shows shared files with the Mac user's uid, not the guest's.
So the gateway runs as root in the VM (``--uid 0``) and gets its token and the
sandbox's keys as ``--env NAME`` (values only in the environment of ``container
run``, never in argv or in a mounted file); it runs every script and kernel as
the Mac user's uid (``--isolation setid --code-uid``), so code can write the
workspace and read mounted credentials, and what it writes stays the user's.

One module over ~300 lines on purpose: the runtime and its parsers of ``container``'s outputs follow
the version table above, and are read and updated together when a new ``container`` release changes one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import CommandFailed, RuntimeTimeout, RuntimeUnavailable, SandboxNotRunning, UsageError
from . import _proc
from ._argv import Command
from ._net import free_port
from .base import (
    GATEWAY_PORT,
    SANDBOX_HOME,
    SANDBOX_WORKSPACE,
    USER_SKILLS,
    ContainerSpec,
    Status,
    env_names,
    gateway_args,
)

log = logging.getLogger("coderunner")

GUEST_SOCKET = "/run/coderunner/gateway.sock"  # --no-network; the gateway creates its directory
KERNEL_HINT = (
    "no Linux kernel is installed for `container` (a first `container system start` was interrupted "
    "or declined): run `container system start --enable-kernel-install`, or `coderunner up` again "
    "with a longer --timeout"
)


def code_ids() -> tuple[int, int]:
    """The uid/gid code runs as in the VM: the Mac user's, so shared files stay theirs (1000 for root)."""
    return os.getuid() or 1000, os.getgid() or 1000


def ssh_guest_path(version: tuple[int, ...]) -> str:
    return "/run/host-services/ssh-auth.sock" if version < (0, 12) else "/var/host-services/ssh-auth.sock"


class AppleRuntime:
    name = "apple"
    isolation = "virtual machine (Apple container): its own Linux kernel per sandbox"
    resumable = True
    enforces_limits = True
    needs_image = True

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
            return (
                "Apple's `container` is not installed: get it from github.com/apple/container/releases "
                "(macOS 26 on Apple silicon)"
            )
        return None

    def prepare(self, timeout: float) -> None:
        if problem := self.problem():
            raise RuntimeUnavailable(problem)
        # Always: `system start` registers the API server before it installs the kernel, so a
        # running system may have none (a first start interrupted); with a kernel it returns at once.
        # stdin closed: the flag answers the kernel prompt.
        try:
            _proc.run([self.binary, "system", "start", "--enable-kernel-install"], timeout=timeout)
        except RuntimeTimeout:
            raise RuntimeTimeout(
                f"`container system start` did not finish within {timeout:g}s (the first start downloads a "
                "Linux kernel): run `container system start --enable-kernel-install` yourself to watch it, "
                "or retry with a longer --timeout"
            ) from None

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
        _live(
            [self.binary, "image", "pull", image], timeout=3600, hint="build it with `coderunner build` or pass --image"
        )

    def _inspect(self, name: str) -> dict[str, Any] | None:
        proc = _proc.run([self.binary, "inspect", name], check=False)
        if proc.returncode != 0:
            if _proc.says_missing(proc.stderr):
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

    def check(self, spec: ContainerSpec) -> None:
        """Refuse what this version of `container` cannot do, before starting anything."""
        if spec.cpus is not None and (spec.cpus < 1 or spec.cpus != int(spec.cpus)):
            raise UsageError(f"--cpus {spec.cpus:g}: the apple runtime gives the VM whole CPUs: pass 1 or more")
        version = self.version()
        if version < (0, 9):
            for m in spec.mounts:
                if not Path(m.source).is_dir():
                    raise UsageError(
                        f"--mount {m.source}: container {'.'.join(map(str, version))} shares directories only "
                        "(single files from 0.9): mount the folder that holds it, or upgrade `container`"
                    )

    def run_argv(self, spec: ContainerSpec) -> list[str]:
        cmd = Command([self.binary, "run", "--detach", "--name", spec.name])
        cmd.add_simple_arg("--cpus", int(spec.cpus or 4))
        cmd.add_simple_arg("--memory", spec.memory or "4g")
        cmd.add_simple_arg("--uid", 0)  # the gateway is root in the VM; code runs as --code-uid
        cmd.add_simple_arg("--gid", 0)
        cmd.add_simple_arg("--volume", f"{spec.skills_dir}:{USER_SKILLS}:ro" if spec.skills_dir is not None else None)
        cmd.add_simple_arg("--volume", f"{spec.workspace}:{SANDBOX_WORKSPACE}" if spec.workspace is not None else None)
        cmd.add_args_iterable("--volume", [m.volume for m in spec.mounts])
        # names only: `container run` takes the values from its environment (_run_env)
        cmd.add_args_iterable("--env", ["CODERUNNER_TOKEN", *env_names(spec)])
        cmd.add_flag("--ssh", bool(spec.ssh_agent))  # Apple sets SSH_AUTH_SOCK to ssh_guest_path(version)
        if spec.network:
            cmd.add_simple_arg("--publish", f"127.0.0.1:{spec.host_port}:{GATEWAY_PORT}")
        else:
            cmd.add_simple_arg("--network", "none")
            cmd.add_simple_arg("--publish-socket", f"{_host_socket(spec)}:{GUEST_SOCKET}")
        cmd.add_flag("--init", self.version() >= (0, 10))
        gateway = gateway_args(spec, isolation="setid", code_ids=code_ids(), pass_env=True, uds=GUEST_SOCKET)
        return [*cmd, spec.image, *gateway]

    def build(self, tag: str, context: str, build_args: dict[str, str]) -> None:
        cmd = [self.binary, "build", "--tag", tag, "--file", f"{context}/Dockerfile"]
        for key, value in build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        _live([*cmd, context], timeout=7200)

    def create(self, spec: ContainerSpec) -> str:
        self.check(spec)
        if spec.network and not spec.host_port:
            spec.host_port = free_port()
        if not spec.network:
            _host_socket(spec).unlink(missing_ok=True)  # left by a crash, it would make `run` refuse
        if os.getuid() == 0 and spec.workspace is not None:
            _chown_tree(spec.workspace, *code_ids())  # root on the host: code is uid 1000 in the VM
        try:
            _proc.run(
                self.run_argv(spec),
                timeout=300,
                env=_run_env(spec),
                hint="is the container system running? `container system status`",
            )
        except CommandFailed as exc:
            if "kernel not configured" in exc.stderr.lower():
                raise RuntimeUnavailable(KERNEL_HINT) from None
            raise
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
            if path := _path(sock.get("hostPath") or sock.get("source")):
                return f"unix:{path}"
        if ip := _ip(info):
            return f"http://{ip}:{GATEWAY_PORT}"
        raise SandboxNotRunning(f"container {name} has no address yet: see `coderunner logs`")

    def resume(self, name: str) -> str:
        info = self._inspect(name) or {}
        for sock in (info.get("configuration") or {}).get("publishedSockets") or []:
            if path := _path(sock.get("hostPath")):
                Path(path).unlink(missing_ok=True)  # stale after a crash
        _proc.run([self.binary, "start", name], timeout=120)
        return self.url(name)

    def stop(self, name: str, timeout: float) -> None:
        seconds = str(max(0, round(timeout)))  # `--time` is whole seconds
        cmd = [self.binary, "stop", "--time", seconds, name]
        proc = _proc.run(cmd, check=False, timeout=timeout + 30)
        if proc.returncode != 0 and not _proc.says_missing(proc.stderr):
            raise CommandFailed(cmd, proc.returncode, proc.stderr or "")

    def remove(self, name: str) -> None:
        _proc.run([self.binary, "delete", "--force", name], check=False)

    def logs(self, name: str, follow: bool, tail: int | None) -> int:
        cmd = Command([self.binary, "logs", name])
        cmd.add_flag("--follow", follow)
        cmd.add_simple_arg("-n", tail or None)
        return _proc.interactive(cmd, stderr_to_stdout=True)

    def exec_interactive(self, name: str, argv: list[str]) -> int:
        uid, gid = code_ids()  # as the code runs: not root, in the workspace
        flags = ["--interactive", "--tty"] if sys.stdin.isatty() else ["--interactive"]
        return _proc.interactive(
            [
                self.binary,
                "exec",
                *flags,
                "--uid",
                str(uid),
                "--gid",
                str(gid),
                "--workdir",
                SANDBOX_WORKSPACE,
                "--env",
                f"HOME={SANDBOX_HOME}",
                name,
                *argv,
            ]
        )


def _host_socket(spec: ContainerSpec) -> Path:
    if spec.run_dir is None:
        raise UsageError("--no-network needs a directory for the gateway's socket")
    return Path(spec.run_dir) / "gateway.sock"


def _run_env(spec: ContainerSpec) -> dict[str, str]:
    """The environment of `container run`: where `--env NAME` takes its values from."""
    from ..config import read_file

    env = dict(os.environ)
    env["CODERUNNER_TOKEN"] = (spec.secrets_dir / "token").read_text().strip()
    if spec.env_file is not None and spec.env_file.exists():
        env.update(read_file(spec.env_file))
    if spec.ssh_agent:
        env["SSH_AUTH_SOCK"] = spec.ssh_agent  # from 0.12 `--ssh` forwards the caller's agent
    return env


def _live(cmd: list[str], *, timeout: float, hint: str = "") -> None:
    """Pull and build: the tool's progress (its stderr, and its stdout) goes to our stderr
    as it comes, drawn by the tool itself when that is a terminal."""
    log.debug("run: %s", shlex.join(cmd))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=None, timeout=timeout)
    except FileNotFoundError:
        raise RuntimeUnavailable(f"`{cmd[0]}` is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise RuntimeTimeout(f"`{shlex.join(cmd[:3])}` did not finish within {timeout:g}s") from None
    if proc.returncode != 0:
        raise CommandFailed(cmd, proc.returncode, "its output is above", hint)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _path(value: Any) -> str | None:
    """A published socket's path: a plain path (>= 1.0) or a file:// URL (0.x)."""
    if not value:
        return None
    text = str(value)
    if text.startswith("file:"):
        return unquote(urlparse(text).path)
    return text


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
