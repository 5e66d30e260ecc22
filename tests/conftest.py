"""Shared fixtures: a real gateway process on a free port, with a token."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from coderunner_cli.runtimes._proc import descendants  # noqa: F401  (tests import it from here)

ROOT = Path(__file__).resolve().parents[1]


def stale_installs() -> list[str]:
    """The checkout's package files that differ from what this Python imports. scripts/setup
    installs the CLI and the gateway as users get them (not editable: setuptools' editable
    hooks cost ~25 ms of every interpreter start, kernels' and scripts' included), so an edit
    is tested only once installed again."""
    import coderunner_gateway

    import coderunner
    import coderunner_cli

    stale = []
    for module, source in (
        (coderunner_cli, ROOT / "coderunner_cli"),
        (coderunner, ROOT / "coderunner"),
        (coderunner_gateway, ROOT / "container_image" / "coderunner_gateway"),
    ):
        installed = Path(module.__file__).resolve().parent
        if installed == source:
            continue  # imported from the checkout itself
        for f in sorted(source.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                copy = installed / f.relative_to(source)
                if not copy.is_file() or copy.read_bytes() != f.read_bytes():
                    stale.append(str(f.relative_to(ROOT)))
    return stale


def pytest_configure(config) -> None:
    if stale := stale_installs():
        pytest.exit(
            f"the installed coderunner is not the checkout ({len(stale)} files differ, first {stale[0]}): "
            "run scripts/setup, or .venv/bin/pip install --no-deps --no-build-isolation ./ ./container_image",
            returncode=4,
        )


@dataclass
class RunningGateway:
    url: str
    token: str
    proc: subprocess.Popen
    workspace: Path
    log: Path
    _clients: list = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kw) -> httpx.Client:
        kw.setdefault("timeout", 60)
        c = httpx.Client(base_url=self.url, headers=self.headers, **kw)
        self._clients.append(c)
        return c

    def execute(self, code: str, **fields) -> dict:
        r = self.client().post("/v1/execute", json={"code": code, **fields})
        assert r.status_code == 200, r.text
        return r.json()

    def stream(self, code: str, **fields) -> list[dict]:
        with self.client().stream(
            "POST", "/v1/execute", json={"code": code, **fields}, headers={"Accept": "application/x-ndjson"}
        ) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"].startswith("application/x-ndjson")
            return [json.loads(line) for line in r.iter_lines() if line]

    def new_session(self, **fields) -> str:
        r = self.client().post("/v1/sessions", json=fields)
        assert r.status_code == 201, r.text
        return r.json()["session_id"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        for c in self._clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_gateway(
    tmp: Path, *args: str, token: str | None = None, env: dict[str, str] | None = None, python: str = sys.executable
) -> RunningGateway:
    workspace = tmp / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    ready = tmp / "ready.json"
    log = tmp / "gateway.log"
    token = token or secrets.token_urlsafe(24)
    env = {**os.environ, **(env or {}), "CODERUNNER_TOKEN": token}
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "coderunner_gateway",
            "--port",
            "0",
            "--workspace",
            str(workspace),
            "--ready-file",
            str(ready),
            "--log-level",
            "warning",
            *args,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"gateway did not start:\n{log.read_text()}")
        time.sleep(0.02)
    url = json.loads(ready.read_text())["url"]
    return RunningGateway(url, token, proc, workspace, log)


def wait_warm(gw: RunningGateway, count: int = 1, timeout: float = 60) -> None:
    """Wait until the pool holds ``count`` warm kernels."""
    deadline = time.monotonic() + timeout
    while httpx.get(gw.url + "/health").json()["warm_kernels"] < count:
        assert time.monotonic() < deadline, "the kernel pool did not warm up"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory) -> RunningGateway:
    gw = start_gateway(tmp_path_factory.mktemp("gw"), "--pool-size", "2")
    yield gw
    gw.stop()


@pytest.fixture
def gateway_factory(tmp_path):
    started: list[RunningGateway] = []

    def factory(*args: str, **kw) -> RunningGateway:
        gw = start_gateway(tmp_path / f"gw{len(started)}", *args, **kw)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.stop()


def stream_lines(events: list[dict]) -> list[tuple[str, str]]:
    """(stream, line) pairs in arrival order, joining chunks of one stream."""
    runs: list[list] = []
    for e in events:
        if e["type"] in ("stdout", "stderr"):
            if runs and runs[-1][0] == e["type"]:
                runs[-1][1] += e["text"]
            else:
                runs.append([e["type"], e["text"]])
    return [(name, line) for name, text in runs for line in text.splitlines()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The peak resident memory of ``pid`` (VmHWM; ``field="VmRSS"``: the current), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def pids_holding(path: Path, timeout: float = 10) -> list[int]:
    """Host pids of the processes that hold ``path`` open. Code runs in cells with PID
    namespaces of their own, so the pid it prints means nothing here: it opens a marker
    file in the workspace instead, and the test finds it by that. Inside a sandbox with
    its own mount namespace the link reads as the sandbox's path (``/workspace/NAME``):
    give such markers unique names."""
    target = os.path.realpath(path)
    inner = "/workspace/" + os.path.basename(target)
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fds = os.listdir(f"/proc/{entry}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in (target, inner):
                        found.append(int(entry))
                        break
                except OSError:
                    continue
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
