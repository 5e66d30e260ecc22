"""`up` and `down` as a user relies on them: one sandbox per state dir, options applied, secrets removed.

Real `local` sandboxes, driven through the installed `coderunner` command.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import cli_env, cr, needs_bwrap
from tests.conftest import descendants, pid_alive

pytestmark = needs_bwrap


def supervisors(state: Path) -> list[int]:
    """Live sandbox supervisors (the `coderunner-sandbox` shell) whose sandbox uses this state dir."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"coderunner-sandbox" in argv[:4] and any(str(state).encode() in a for a in argv) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def gateway_pid(supervisor: int) -> int:
    """The gateway's process: `python -m coderunner_gateway` (not bwrap, whose argv also names it)."""
    for pid in descendants(supervisor):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"coderunner_gateway" in argv[1:3] and b"bwrap" not in argv[0]:
            return pid
    raise AssertionError("no gateway process")


def wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if pid_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def cleanup(env: dict[str, str], pids: list[int]) -> None:
    cr(env, "down", "--remove")
    for pid in pids:  # only processes this test started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


def test_up_ends_an_unhealthy_sandbox_before_starting_one(tmp_path):
    env = cli_env(tmp_path)
    state = tmp_path / "state"
    cr(env, "up", "--runtime", "local", check=0, timeout=180)
    [sup] = supervisors(state)
    old_tree = [sup, *descendants(sup)]
    try:
        cr(env, "exec", "-c", "open('kept.txt', 'w').write('kept')", check=0)
        os.kill(gateway_pid(sup), signal.SIGSTOP)  # running, but answers nothing
        r = cr(env, "up", check=0, timeout=180)
        assert "did not answer" in r.stderr
        assert wait_gone(old_tree) == [], "the old sandbox's processes outlived `up`"
        assert len(supervisors(state)) == 1
        assert json.loads(cr(env, "status", "--json", check=0).stdout)["healthy"]
        assert cr(env, "exec", "-c", "print(open('kept.txt').read())", check=0).stdout == "kept\n"
    finally:
        cleanup(env, old_tree)


def test_concurrent_ups_start_one_sandbox(tmp_path):
    env = cli_env(tmp_path)
    state = tmp_path / "state"
    procs = [
        subprocess.Popen(
            ["coderunner", "up", "--runtime", "local"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert outs[0][0] == outs[1][0], "both print the one sandbox's URL"
        assert sorted("already running" in err for _, err in outs) == [False, True]
        assert len(supervisors(state)) == 1
    finally:
        cleanup(env, supervisors(state))


def test_down_remove_deletes_secrets_and_down_when_nothing_runs_is_fine(tmp_path):
    env = cli_env(tmp_path)
    secrets = tmp_path / "state" / "secrets"
    extra = tmp_path / "extra.env"
    extra.write_text("EXTRA_KEY=sk-extra-secret\n")
    (tmp_path / "coderunner.config").write_text("CONFIG_KEY=sk-config-secret\n")
    try:
        cr(env, "up", "--runtime", "local", "--env-file", str(extra), check=0, timeout=180)
        assert (secrets / "sandbox.env").exists() and (secrets / "token").exists()
        r = cr(env, "down", "--remove", check=0)
        assert "removed" in r.stderr
        assert not (secrets / "sandbox.env").exists() and not (secrets / "token").exists()
        leftovers = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
        assert not any(b"sk-" in p.read_bytes() for p in leftovers), leftovers
        r = cr(env, "down", check=0)
        assert r.stderr == "coderunner: no sandbox is running: nothing to stop\n" and r.stdout == ""
        assert cr(env, "down", "--remove", check=0).stdout == ""
    finally:
        cleanup(env, supervisors(tmp_path / "state"))


def test_up_applies_new_options_or_says_how(tmp_path):
    env = cli_env(tmp_path)
    state = tmp_path / "state"
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("mounted")
    getenv = "import os; print(os.environ.get('NEW_KEY'))"
    try:
        cr(env, "up", "--runtime", "local", check=0, timeout=180)
        cr(env, "exec", "-c", "open('kept.txt', 'w').write('kept')", check=0)

        r = cr(env, "up", "--no-network", "--mount", f"{data}:/data:ro", check=0, timeout=180)
        assert "recreating the sandbox for --network/--no-network, --mount" in r.stderr
        assert r.stdout.startswith("unix:")
        assert cr(env, "exec", "-c", "print(open('/data/in.txt').read())", check=0).stdout == "mounted\n"
        assert cr(env, "exec", "-c", "print(open('kept.txt').read())", check=0).stdout == "kept\n"
        assert len(supervisors(state)) == 1

        r = cr(env, "up", check=0)  # options not given keep what the sandbox has
        assert "already running" in r.stderr and r.stdout.startswith("unix:")

        cr(env, "config", "set", "NEW_KEY", "new-value", check=0)
        r = cr(env, "up", check=0, timeout=180)
        assert "recreating the sandbox for the environment" in r.stderr
        assert cr(env, "exec", "-c", getenv, check=0).stdout == "new-value\n"
        assert "'data'" in cr(env, "exec", "-c", "import os; print(os.listdir('/'))", check=0).stdout

        cr(env, "session", "new", "work", check=0)
        r = cr(env, "up", "--network", check=2)
        assert r.stderr.count("\n") == 1 and "1 live session" in r.stderr and "--recreate" in r.stderr
        assert cr(env, "status", "--json", check=0).stdout.count('"unix:') == 1, "left as it was"

        r = cr(env, "up", "--network", "--recreate", check=0, timeout=180)
        assert r.stdout.startswith("http://127.0.0.1:")
        assert cr(env, "exec", "-c", "print(open('kept.txt').read())", check=0).stdout == "kept\n"
        assert len(supervisors(state)) == 1
        options = json.loads((state / "state.json").read_text())["options"]
        assert "new-value" not in json.dumps(options), "digests, never values"
    finally:
        cleanup(env, supervisors(state))


def test_status_says_when_the_token_is_refused_and_up_recovers(tmp_path):
    env = cli_env(tmp_path)
    state = tmp_path / "state"
    try:
        cr(env, "up", "--runtime", "local", check=0, timeout=180)
        (state / "secrets" / "token").write_text("not-the-token\n")
        r = cr(env, "status", check=3)
        assert any(line.split() == ["token", "refused"] for line in r.stdout.splitlines()), r.stdout
        assert "the gateway refuses the token" in r.stdout and "coderunner up" in r.stdout
        assert json.loads(cr(env, "status", "--json", check=3).stdout)["token"] == "refused"
        r = cr(env, "up", check=0, timeout=180)
        assert "refused its token" in r.stderr
        assert json.loads(cr(env, "status", "--json", check=0).stdout)["token"] == "accepted"
        assert len(supervisors(state)) == 1
    finally:
        cleanup(env, supervisors(state))
