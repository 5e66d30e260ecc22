"""CLI fixtures: every coderunner path points into tmp; a real `local` sandbox."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = str(Path(sys.executable).parent)
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERUNNER_")}
    env.update(
        {
            "CODERUNNER_HOME": str(home / "state"),
            "CODERUNNER_CONFIG": str(home / "coderunner.config"),
            "CODERUNNER_OUTPUTS": str(home / "outputs"),
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
            "NO_COLOR": "1",
        }
    )
    env.update(extra)
    return env


def cr(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 120, check: int | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["coderunner", *args],
        env=env,
        input=input,
        text=True,
        capture_output=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path, monkeypatch):
    """In-process code (CliRunner, client) sees temp paths too."""
    monkeypatch.setenv("CODERUNNER_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("CODERUNNER_CONFIG", str(tmp_path / "coderunner.config"))
    for key in ("CODERUNNER_URL", "CODERUNNER_TOKEN", "CODERUNNER_RUNTIME"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """`coderunner up --runtime local` once for the module's tests; yields the CLI env."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    home = tmp_path_factory.mktemp("cr")
    env = cli_env(home)
    (home / "coderunner.config").write_text("SANDBOX_SECRET=from-config\nCODERUNNER_RUNTIME=local\n")
    up = cr(env, "up", "--runtime", "local", timeout=180)
    assert up.returncode == 0, up.stderr
    env["_URL"] = up.stdout.strip()
    yield env
    cr(env, "down", "--remove")
