"""The set-up scripts' shared heartbeat: a long step is never silent, and its status is kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_heartbeat(tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    script = f". {ROOT}/scripts/lib/heartbeat.sh; heartbeat step {tmp_path}/log sh -c '{command}'"
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env={"HEARTBEAT_EVERY": "1", "PATH": "/usr/bin:/bin"}
    )


def test_heartbeat_names_the_step_and_its_last_line_while_it_runs(tmp_path):
    r = run_heartbeat(tmp_path, "echo fetching wheels; sleep 3.5; echo done")
    assert r.returncode == 0
    beats = [line for line in r.stderr.splitlines() if line.startswith("step: still running")]
    assert len(beats) >= 2, r.stderr
    assert beats[0].endswith(": fetching wheels")
    assert (tmp_path / "log").read_text() == "fetching wheels\ndone\n"


def test_heartbeat_returns_the_steps_status_and_is_quiet_for_a_quick_step(tmp_path):
    r = run_heartbeat(tmp_path, "echo oops; exit 7")
    assert r.returncode == 7
    assert r.stderr == ""


def test_setup_says_its_pip_step_is_still_running(tmp_path):
    """scripts/setup's pip step (about 100 s the first time) beats like the image build's steps:
    run on a copy whose .venv/bin/python is a stand-in for a slow pip, with every tool present."""
    import os
    import shutil

    (tmp_path / "scripts" / "lib").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy(ROOT / "scripts" / "lib" / "heartbeat.sh", tmp_path / "scripts" / "lib" / "heartbeat.sh")
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("bwrap", "curl", "chromium", "ruby", "python3"):  # present: no apt
        (tools / tool).write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text(
        '#!/bin/sh\ncase "$*" in *"--no-build-isolation .[test]"*) echo "Collecting jupyter_client"; sleep 3.5;; esac\nexit 0\n'
    )
    for f in [*tools.iterdir(), tmp_path / ".venv" / "bin" / "python"]:
        f.chmod(0o755)
    r = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "setup")],
        capture_output=True,
        text=True,
        env={"HEARTBEAT_EVERY": "1", "PATH": f"{tools}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    beats = [line for line in r.stderr.splitlines() if line.startswith("setup: still running")]
    assert len(beats) >= 2, r.stderr
    assert beats[-1].endswith(": Collecting jupyter_client"), r.stderr
    assert r.stderr.splitlines()[-1] == "setup: ready (.venv)"
