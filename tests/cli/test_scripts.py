"""scripts/setup and scripts/quickstart as a newcomer meets them, run in a copy of the checkout
with small doubles on PATH for apt-get and the venv (nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("bash", "sh", "env", "dirname", "mktemp", "rm", "tail", "id", "cat", "python3", "sleep", "tr", "cut")


def fake_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A checkout with scripts/, a .venv whose python and coderunner only log their argv,
    and a PATH with basic tools but no bwrap, chromium, curl or ruby, and an apt-get double."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("setup", "quickstart"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    shutil.copytree(ROOT / "scripts" / "lib", repo / "scripts" / "lib")  # what they source
    log = tmp_path / "calls.log"
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        if found := shutil.which(tool):
            (bindir / tool).symlink_to(found)
    for path, name in (
        (venv_bin / "python", "python"),
        (venv_bin / "coderunner", "coderunner"),
        (bindir / "apt-get", "apt-get"),
        (bindir / "sudo", "sudo"),
    ):
        body = 'exec "$@"' if name == "sudo" else "exit 0"
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{body}\n')
        path.chmod(0o755)
    env = {"PATH": str(bindir), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    return repo, env


def test_setup_waits_for_the_dpkg_lock_and_says_what_it_does(tmp_path):
    repo, env = fake_checkout(tmp_path)
    r = subprocess.run(["bash", str(repo / "scripts" / "setup")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    apt = [c for c in calls if c.startswith("apt-get")]
    assert len(apt) == 2 and all("-o DPkg::Lock::Timeout=300" in c for c in apt), apt
    assert "bubblewrap" in apt[1] and "chromium" in apt[1]
    lines = r.stderr.splitlines()
    assert lines[0].startswith("setup: installing bubblewrap") and "with apt" in lines[0]
    assert any(line.startswith("setup: installing the CLI") and "pip" in line for line in lines)
    assert lines[-1] == "setup: ready (.venv)"


def test_quickstart_ends_with_the_export_path_line(tmp_path):
    repo, env = fake_checkout(tmp_path)
    r = subprocess.run(
        ["bash", str(repo / "scripts" / "quickstart")], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(f'export PATH="{repo}/.venv/bin:$PATH"\n'), r.stdout
    calls = (tmp_path / "calls.log").read_text()
    assert "coderunner up --runtime local" in calls and "coderunner exec examples/hello.py" in calls
    assert os.path.isdir(repo / ".venv")
