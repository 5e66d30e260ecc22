"""The apple backend end to end through an executable `container` double on PATH.

The double (tests/doubles/container) answers like Apple's CLI at 0.7.1,
0.12.3 and 1.2.2 (argv, exit codes, error text, JSON shapes from the
recorded fixtures) and starts the real gateway as the "container".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, cr
from tests.conftest import pid_alive

ROOT = Path(__file__).resolve().parents[2]
DOUBLES = ROOT / "tests" / "doubles"
FIXTURES = ROOT / "tests" / "fixtures" / "apple-container"


def apple_env(tmp_path: Path, version: str, **extra: str) -> dict[str, str]:
    env = cli_env(tmp_path, CONTAINER_DOUBLE_VERSION=version, CONTAINER_DOUBLE_STATE=str(tmp_path / "double"),
                  CONTAINER_DOUBLE_FIXTURES=str(FIXTURES), CONTAINER_DOUBLE_PYTHON=sys.executable, **extra)
    env["PATH"] = f"{DOUBLES}{os.pathsep}{env['PATH']}"
    return env


def argv_log(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["CONTAINER_DOUBLE_STATE"]) / "argv.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("version", ["0.12.3", "1.2.2"])
def test_up_exec_down_resume(tmp_path, version):
    env = apple_env(tmp_path, version)
    (tmp_path / "coderunner.config").write_text("OPENAI_API_KEY=sk-test-123\n")
    try:
        up = cr(env, "up", "--runtime", "apple", "--cpus", "2", "--memory", "2g", check=0, timeout=180)
        url = up.stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        calls = argv_log(env)
        # the system was started non-interactively, the image pulled, the sandbox run detached
        assert ["system", "start", "--enable-kernel-install"] in calls
        context = str(ROOT / "container_image")  # a source checkout builds the default image
        assert ["build", "-t", "coderunner:latest", "-f", f"{context}/Dockerfile", context] in calls
        run = next(c for c in calls if c[0] == "run")
        port = url.rsplit(":", 1)[1]
        home = tmp_path / "state"
        assert run == [
            "run", "--detach", "--name", "coderunner", "--cpus", "2", "--memory", "2g",
            "--volume", f"{home}/secrets:/run/coderunner/secrets:ro",
            "--volume", f"{home}/skills:/run/coderunner/skills:ro",
            "--volume", f"{home}/workspace:/workspace",
            "--publish", f"127.0.0.1:{port}:8222", "--init", "coderunner:latest",
            "coderunner-gateway", "--workspace", "/workspace", "--token-file", "/run/coderunner/secrets/token",
            "--user-skills-dir", "/run/coderunner/skills", "--env-file", "/run/coderunner/secrets/sandbox.env", "--host", "0.0.0.0", "--port", "8222",
        ]
        assert not any("sk-test-123" in arg for c in calls for arg in c), "a secret reached a command line"
        status = json.loads(cr(env, "status", "--json", check=0).stdout)
        assert status["runtime"] == "apple" and status["state"] == "running" and status["healthy"]
        assert cr(env, "exec", "-c", "import os; print(os.environ['OPENAI_API_KEY'])", check=0).stdout == "sk-test-123\n"
        assert "listening on" in cr(env, "logs", check=0).stdout

        cr(env, "down", check=0)
        assert json.loads(cr(env, "status", "--json", check=3).stdout)["state"] == "stopped"
        again = cr(env, "up", check=0, timeout=120)
        assert "resumed" in again.stderr
        assert ["start", "coderunner"] in argv_log(env)
        assert sum(1 for c in argv_log(env) if c[0] == "run") == 1, "a stopped sandbox resumes; it is not re-created"
        assert cr(env, "exec", "-c", "print('back')", check=0).stdout == "back\n"
    finally:
        cr(env, "down", "--remove")
    assert ["delete", "--force", "coderunner"] in argv_log(env)
    assert cr(env, "status").returncode == 3


def test_system_start_that_hangs_is_stopped_at_the_timeout(tmp_path):
    env = apple_env(tmp_path, "1.2.2", CONTAINER_DOUBLE_START_HANG="1")
    t0 = time.monotonic()
    r = cr(env, "up", "--runtime", "apple", "--timeout", "2", check=75, timeout=60)
    assert time.monotonic() - t0 < 20
    assert "did not finish within 2s" in r.stderr and "kernel" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, "one line, no traceback"
    hung = int((Path(env["CONTAINER_DOUBLE_STATE"]) / "start-hung.pid").read_text())
    deadline = time.monotonic() + 5
    while pid_alive(hung) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(hung), "the hung `system start` was left running"


def test_pull_failure_is_one_clear_line(tmp_path):
    env = apple_env(tmp_path, "0.12.3", CONTAINER_DOUBLE_PULL_FAILS="1")
    r = cr(env, "up", "--runtime", "apple", "--image", "example/coderunner:1.0", timeout=60)
    assert r.returncode == 71
    assert r.stderr.startswith("coderunner: `container image pull") and "coderunner build" in r.stderr


@pytest.mark.parametrize("version", ["0.7.1", "0.12.3", "1.2.2"])
def test_status_parsing_of_every_version(tmp_path, version, monkeypatch):
    """Running, stopped and missing containers, parsed from each version's real shapes."""
    from coderunner_cli.runtimes.apple import AppleRuntime

    env = apple_env(tmp_path, version)
    for key in ("PATH", "CONTAINER_DOUBLE_VERSION", "CONTAINER_DOUBLE_STATE", "CONTAINER_DOUBLE_FIXTURES"):
        monkeypatch.setenv(key, env[key])
    rt = AppleRuntime()
    assert rt.version()[:2] == tuple(int(x) for x in version.split("."))[:2]
    rt.prepare(30)
    assert rt.status("nosuch").state == "missing"
    state = Path(env["CONTAINER_DOUBLE_STATE"]) / "containers"
    rec = {"name": "box", "image": "coderunner:latest", "args": [], "volumes": [], "ports": [["127.0.0.1", 9999, 8222]],
           "sockets": [], "pid": os.getpid()}
    (state / "box.json").write_text(json.dumps(rec))
    assert rt.status("box").state == "running"
    assert rt.url("box") == "http://127.0.0.1:9999"
    rec["pid"] = None
    (state / "box.json").write_text(json.dumps(rec))
    assert rt.status("box").state == "stopped"


@pytest.mark.parametrize("version", ["0.7.1", "0.12.3", "1.2.2"])
def test_fixture_shapes_parse(version):
    """The recorded inspect outputs themselves: state and IP from each shape."""
    from coderunner_cli.runtimes.apple import _image_name, _ip, _state

    running = json.loads((FIXTURES / version / "inspect-running.json").read_text())[0]
    stopped = json.loads((FIXTURES / version / "inspect-stopped.json").read_text())[0]
    assert _state(running) == "running" and _state(stopped) == "stopped"
    assert _ip(running) == "192.168.64.3"
    assert _ip(stopped) is None
    images = json.loads((FIXTURES / version / "image-list.json").read_text())
    assert _image_name(images[0]) == "coderunner:latest"
