"""When the sandbox's process limit is reached (fork fails with EAGAIN), the gateway says so:
503 ``process_limit`` (JSON), a ``done`` with exit code 71 and the same one line (NDJSON), and the
CLI prints that line and exits 71; never "internal gateway error".

A root gateway is exempt from RLIMIT_NPROC, so the gateway here runs with every fork refused
while a trigger file exists (``_posixsubprocess.fork_exec`` raising EAGAIN, as the kernel
makes it); ``test_a_real_process_limit`` runs it under a real RLIMIT_NPROC where that works
(not root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningGateway

MESSAGE = "could not start a process: the sandbox's process limit is reached; end some sessions or background processes"

# the gateway's own main, with fork refused while TRIGGER exists (the token from a file: no re-exec)
LAUNCH = """
import errno, os, sys, _posixsubprocess
trigger, real = sys.argv.pop(1), _posixsubprocess.fork_exec
def fork_exec(*args):
    if os.path.exists(trigger):
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    return real(*args)
_posixsubprocess.fork_exec = fork_exec
sys.argv[0] = "coderunner-gateway"
from coderunner_gateway.__main__ import main
main()
"""


def start(tmp: Path, *args: str) -> tuple[RunningGateway, Path]:
    workspace, ready, log, token_file = tmp / "workspace", tmp / "ready.json", tmp / "gateway.log", tmp / "token"
    workspace.mkdir(parents=True)
    token_file.write_text("t0ken-for-the-process-limit-test")
    token_file.chmod(0o600)
    trigger = tmp / "refuse-forks"
    cmd = [sys.executable, "-c", LAUNCH, str(trigger), "--port", "0", "--workspace", str(workspace)]
    cmd += ["--ready-file", str(ready), "--token-file", str(token_file), "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    gw = RunningGateway(json.loads(ready.read_text())["url"], token_file.read_text(), proc, workspace, log)
    return gw, trigger


@pytest.fixture
def limited(tmp_path):
    gw, trigger = start(tmp_path, "--pool-size", "0", "--script-pool", "0")
    assert gw.execute("print(1)")["stdout"] == "1\n"  # forks work until the limit is reached
    trigger.touch()
    yield gw
    gw.stop()


def test_a_script_that_cannot_start_is_503_process_limit(limited):
    c = limited.client()
    for language, code in (("python", "print(1)"), ("bash", "echo 1")):
        r = c.post("/v1/execute", json={"code": code, "language": language})
        assert r.status_code == 503, r.text
        assert r.json() == {"error": {"code": "process_limit", "message": MESSAGE}}


def test_a_streamed_script_that_cannot_start_ends_with_the_limit_said(limited):
    events = limited.stream("print(1)")
    assert events[0]["type"] == "start"
    assert events[-1] == {
        "type": "done",
        "status": "error",
        "exit_code": 71,
        "execution_time": events[-1]["execution_time"],
        "message": MESSAGE,
    }


def test_a_bash_session_that_cannot_start_is_503_process_limit(limited):
    r = limited.client().post("/v1/sessions", json={"language": "bash"})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == {"code": "process_limit", "message": MESSAGE}
    assert "Traceback" not in limited.log.read_text()  # a known condition, said in one line


def test_a_python_session_whose_kernel_cannot_start_says_the_limit(limited):
    sid = limited.new_session()  # at once: its kernel starts in the background, and cannot
    done = limited.stream("1", session_id=sid)[-1]
    assert done["status"] == "died" and MESSAGE in done["message"], done
    assert f"could not start a python kernel: {MESSAGE}" in limited.log.read_text()  # (jupyter_client logs its own)


def test_the_cli_says_the_limit_and_exits_71(limited, tmp_path):
    env = {**os.environ, "CODERUNNER_URL": limited.url, "CODERUNNER_TOKEN": limited.token}
    env["CODERUNNER_HOME"] = str(tmp_path / "home")
    coderunner = str(Path(sys.executable).parent / "coderunner")
    for argv in (["exec", "-c", "print(1)"], ["exec", "--outputs", str(tmp_path), "-c", "print(1)"]):
        r = subprocess.run([coderunner, *argv], env=env, capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stdout, r.stderr) == (71, "", f"coderunner: {MESSAGE}\n"), argv
    r = subprocess.run(
        [coderunner, "session", "new", "--lang", "bash"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (r.returncode, r.stderr) == (71, f"coderunner: {MESSAGE}\n")


@pytest.mark.skipif(os.geteuid() == 0, reason="root is exempt from RLIMIT_NPROC (scripts/test-as-user runs it)")
@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_a_real_process_limit(tmp_path, isolation):
    """Code takes every process the limit allows; the next script is refused in one line, and the
    gateway (whose ZeroMQ threads exist before the limit is met) stays up."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    tasks = sum(1 for _ in Path("/proc").glob("[0-9]*/task/*") if _.stat().st_uid == os.getuid())
    limit = tasks + 60
    if hard != resource.RLIM_INFINITY and hard < limit:
        pytest.skip(f"RLIMIT_NPROC's hard limit {hard} is too low to run a gateway under")
    prlimit = ["prlimit", f"--nproc={limit}:{hard if hard != resource.RLIM_INFINITY else 'unlimited'}"]
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    ready = tmp_path / "ready.json"
    token = "t0ken-for-the-real-limit"
    cmd = [*prlimit, sys.executable, "-m", "coderunner_gateway", "--port", "0", "--workspace", str(workspace)]
    cmd += ["--ready-file", str(ready), "--pool-size", "1", "--script-pool", "0", "--log-level", "warning"]
    cmd += ["--isolation", isolation]
    log = tmp_path / "gateway.log"
    proc = subprocess.Popen(cmd, env={**os.environ, "CODERUNNER_TOKEN": token}, stderr=open(log, "wb"))
    gw = None
    try:
        while not ready.exists():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        gw = RunningGateway(json.loads(ready.read_text())["url"], token, proc, workspace, log)
        c = gw.client()
        sid = gw.new_session()
        hog = "import subprocess\nps = []\ntry:\n    while True: ps.append(subprocess.Popen(['sleep', '600']))\nexcept OSError: pass"
        assert c.post("/v1/execute", json={"code": hog, "session_id": sid}).status_code == 200
        r = c.post("/v1/execute", json={"code": "print(1)"})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "process_limit"
        assert c.post("/v1/execute", json={"code": "print(len(ps))", "session_id": sid}).status_code == 200
        for free in (0, 1, 2, 3, 4):  # kernels that cannot start: said, and the gateway stays up (ZeroMQ
            # aborts a process whose I/O thread cannot start): with a few processes free, a kernel's process
            # may start and the threads after it not
            free_some = f"for p in ps[:{free}]: p.kill(); p.wait()\nps = ps[{free}:]"
            assert c.post("/v1/execute", json={"code": free_some, "session_id": sid}).status_code == 200
            other = c.post("/v1/sessions", json={})
            if other.status_code == 201:
                r = c.post("/v1/execute", json={"code": "1", "session_id": other.json()["session_id"]})
                assert r.status_code in (200, 503), r.text
            else:
                assert other.status_code == 503, other.text
        assert httpx.get(gw.url + "/health").status_code == 200
        c.delete(f"/v1/sessions/{sid}")
        deadline = time.monotonic() + 30
        while (r := c.post("/v1/execute", json={"code": "print(1)"})).status_code == 503:
            assert time.monotonic() < deadline, "the processes of a deleted session were not freed"
            time.sleep(0.5)
        assert r.json()["stdout"] == "1\n"
        assert httpx.get(gw.url + "/health").status_code == 200
    finally:
        if gw is not None:
            gw.stop()
        else:
            proc.kill()
