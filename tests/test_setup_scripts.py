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
