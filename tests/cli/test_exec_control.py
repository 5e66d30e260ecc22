"""`coderunner exec` around the code: waiting behind a busy session, Ctrl-C on code that
ignores it, Ctrl-C while the CLI starts. A real local sandbox (the conftest's `sandbox`)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import cr, needs_bwrap
from tests.conftest import pid_alive, pids_holding

IGNORES_SIGINT = (
    "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('started', flush=True)\ntime.sleep(60)"
)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["coderunner", "exec", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout.readline() == "started\n"
    return proc


def _idle(env: dict[str, str], name: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while True:
        rows = json.loads(cr(env, "session", "ls", "--json", check=0).stdout)
        if not next(s for s in rows if s["name"] == name)["busy"]:
            return
        assert time.monotonic() < deadline, f"session {name} is still busy"
        time.sleep(0.1)


@needs_bwrap
def test_exec_on_a_busy_session_says_it_is_queued(sandbox):
    cr(sandbox, "session", "new", "queue", check=0)
    first = _start(sandbox, "-s", "queue", "-c", "import time\nprint('started', flush=True)\ntime.sleep(3)")
    second = cr(sandbox, "exec", "-s", "queue", "-c", "print('second')", check=0)
    assert second.stdout == "second\n"
    assert second.stderr == "coderunner: queued behind 1 execution(s) on session queue\n"
    assert first.wait(15) == 0
    quiet = cr(sandbox, "exec", "-s", "queue", "-c", "import time\ntime.sleep(1.6)", check=0)
    assert quiet.stderr == "", "silent code that waits for nobody is not said to be queued"


@needs_bwrap
def test_ctrl_c_on_code_ignoring_it_restarts_the_kernel_after_3s(sandbox):
    cr(sandbox, "session", "new", "stubborn", check=0)
    cr(sandbox, "exec", "-s", "stubborn", "-c", "kept = 1", check=0)
    proc = _start(sandbox, "-s", "stubborn", "-c", IGNORES_SIGINT)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert 2.5 < took < 8, took
    assert "restarted the kernel of session stubborn; its state was lost" in err
    assert "Traceback" not in err and "internal gateway error" not in err, err
    _idle(sandbox, "stubborn")
    assert cr(sandbox, "exec", "-s", "stubborn", "-c", "print('kept' in globals())", check=0).stdout == "False\n"


@needs_bwrap
def test_second_ctrl_c_restarts_at_once(sandbox):
    cr(sandbox, "session", "new", "stubborn2", check=0)
    proc = _start(sandbox, "-s", "stubborn2", "-c", IGNORES_SIGINT)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - t0 < 2.5, err
    assert "its state was lost" in err
    _idle(sandbox, "stubborn2")
    assert cr(sandbox, "exec", "-s", "stubborn2", "-c", "print('ok')", check=0).stdout == "ok\n"


@needs_bwrap
def test_ctrl_c_kills_a_script_ignoring_it(sandbox):
    marker = f"sigign-{uuid.uuid4().hex}.mark"
    proc = _start(sandbox, "-c", f"_hold = open({marker!r}, 'w')\n" + IGNORES_SIGINT)
    pids = pids_holding(Path(sandbox["CODERUNNER_HOME"]) / "workspace" / marker)
    assert pids
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 130
    deadline = time.monotonic() + 10
    while any(map(pid_alive, pids)):
        assert time.monotonic() < deadline, "the script survived Ctrl-C"
        time.sleep(0.1)


def test_ctrl_c_while_starting_prints_no_traceback(tmp_path):
    from tests.cli.conftest import cli_env

    env = cli_env(tmp_path)
    outcomes = set()
    for i in range(30):
        proc = subprocess.Popen(
            ["coderunner", "exec", "-c", "print(1)"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        time.sleep(0.005 * i)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        if err and not re.search(r'File "[^"]*/coderunner_cli/', err) and not err.startswith("coderunner:"):
            continue  # the interpreter's own start (site.py, reading our package's files), before our code ran
        assert "Traceback" not in err, (0.005 * i, err)
        if "the sandbox is not running" not in err:  # else it had done its work (found no sandbox)
            # -2: the signal came before Python could handle it (no output at all)
            # 130 and no word: typer's parsing had it
            assert (proc.returncode, err) in ((130, "coderunner: interrupted\n"), (130, ""), (-2, "")), (
                proc.returncode,
                err,
            )
        outcomes.add(proc.returncode)
    assert 130 in outcomes, outcomes


@pytest.mark.parametrize("how", ["plain", "in __set_name__"])
def test_ctrl_c_inside_a_module_being_loaded_prints_no_traceback(tmp_path, how):
    """Ctrl-C that lands while the CLI loads a module: a KeyboardInterrupt, or (Python 3.11)
    a RuntimeError it caused, when it landed in a class's ``__set_name__`` (ipaddress, loaded
    through pathlib: CI hit it). Either way "interrupted" and 130, as for a Ctrl-C later on."""
    from tests.cli.conftest import cli_env

    raise_it = {
        "plain": "raise KeyboardInterrupt",
        "in __set_name__": "type('C', (), {'d': type('D', (), {'__set_name__': interrupt})()})",
    }[how]
    code = (
        "import sys\n"
        "def interrupt(*args):\n    raise KeyboardInterrupt\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == 'coderunner_cli.paths':\n            {raise_it}\n"
        "sys.meta_path.insert(0, Hook())\n"
        "sys.argv = ['coderunner', 'exec', '-c', 'print(1)']\n"
        "from coderunner_cli._fast import main\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stderr) == (130, "coderunner: interrupted\n")
