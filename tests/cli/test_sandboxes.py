"""Several sandboxes side by side (`--name`, $CODERUNNER_SANDBOX, `coderunner ls`, `CodeRunner(sandbox=)`).

Real sandboxes each time: local (bubblewrap), the Apple double, and docker
when CODERUNNER_E2E_IMAGE names a built image.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, cr, needs_bwrap

# each sandbox writes its name in its workspace, then lists what its code can see
PEEK = (
    "import os, sys, time\n"
    "open('mine.txt', 'w').write(sys.argv[1])\n"
    "time.sleep(2)\n"
    "other = sys.argv[2]\n"
    "print(sorted(os.listdir('/workspace')), os.path.exists(other))\n"
)


def _side_by_side(env: dict[str, str], state: Path, workspace: dict[str, Path]) -> None:
    """Code runs in a and b at once; each sees its own workspace only, not the other's by host path."""
    procs = {}
    start = time.monotonic()
    for me, other in (("a", "b"), ("b", "a")):
        procs[me] = subprocess.Popen(
            ["coderunner", "exec", "--name", me, "-c", PEEK, me, str(workspace[other] / "mine.txt")],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
    outs = {me: p.communicate(timeout=120) for me, p in procs.items()}
    took = time.monotonic() - start
    for me, (out, err) in outs.items():
        assert procs[me].returncode == 0, err
        assert out == "['mine.txt'] False\n", (me, out, err)
        assert (workspace[me] / "mine.txt").read_text() == me
    assert took < 3.9, f"the two execs ran one after the other ({took:.1f}s)"


async def _mcp_reads_mine(env: dict[str, str], name: str) -> str:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command="coderunner", args=["mcp", "--name", name], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        r = await s.call_tool("execute_python_code", {"command": "print(open('mine.txt').read())"})
        return r.content[0].text


def _ls(env: dict[str, str]) -> dict[str, dict]:
    rows = json.loads(cr(env, "ls", "--json", check=0).stdout)
    return {r["name"]: r for r in rows}


@needs_bwrap
def test_two_local_sandboxes_side_by_side(tmp_path):
    env = cli_env(tmp_path)
    state = Path(env["CODERUNNER_HOME"])
    try:
        assert (
            "coderunner: sandbox a started"
            in cr(env, "up", "--runtime", "local", "--name", "a", check=0, timeout=180).stderr
        )
        cr({**env, "CODERUNNER_SANDBOX": "b"}, "up", "--runtime", "local", "--no-network", check=0, timeout=180)
        workspace = {n: state / "sandboxes" / n / "workspace" for n in ("a", "b")}
        _side_by_side(env, state, workspace)

        rows = _ls(env)
        assert set(rows) == {"a", "b"}, rows
        assert all(r["runtime"] == "local" and r["state"] == "running" and r["url"] for r in rows.values())
        assert rows["b"]["options"]["network"] is False and rows["a"]["options"]["network"] is True
        assert rows["a"]["url"] != rows["b"]["url"] and rows["a"]["created"]
        table = cr(env, "ls", check=0).stdout.splitlines()
        assert table[0].split("\t") == ["NAME", "RUNTIME", "STATE", "URL", "CREATED", "OPTIONS"]
        assert [line.split("\t")[0] for line in table[1:]] == ["a", "b"]
        assert "--no-network" in table[2]
        assert (state / "sandboxes" / "a" / "secrets" / "token").read_text() != (
            state / "sandboxes" / "b" / "secrets" / "token"
        ).read_text()
        assert not (state / "state.json").exists(), "the default sandbox was not started"
        assert cr(env, "status").returncode == 3

        # the Python client finds each sandbox's URL and token
        from coderunner_cli import AsyncCodeRunner, CodeRunner

        with CodeRunner(sandbox="a") as c:
            assert c.execute("print(open('mine.txt').read())").stdout == "a\n"

        async def in_b() -> str:
            async with AsyncCodeRunner(sandbox="b") as c:
                return (await c.execute("print(open('mine.txt').read())")).stdout

        assert asyncio.run(in_b()) == "b\n"
        assert asyncio.run(_mcp_reads_mine(env, "b")) == "b\n", "`coderunner mcp --name b` bridges to b"

        cr(env, "session", "new", "--name", "a", "s1", check=0)
        assert [s["name"] for s in json.loads(cr(env, "session", "ls", "--name", "a", "--json", check=0).stdout)] == [
            "s1"
        ]
        assert json.loads(cr(env, "session", "ls", "--name", "b", "--json", check=0).stdout) == []

        # down --name a leaves b running
        assert "stopped" in cr(env, "down", "--name", "a", check=0).stderr
        assert cr(env, "status", "--name", "a").returncode == 3
        assert json.loads(cr(env, "status", "--name", "b", "--json", check=0).stdout)["healthy"]
        assert cr(env, "exec", "--name", "b", "-c", "print('still here')", check=0).stdout == "still here\n"
        rows = _ls(env)
        assert rows["a"]["state"] == "stopped" and rows["a"]["url"] is None and rows["b"]["state"] == "running"
        missing = cr(env, "exec", "--name", "c", "-c", "1", check=3)
        assert "`coderunner up --name c`" in missing.stderr
        assert cr(env, "exec", "--name", "../x", "-c", "1", check=2).stderr.startswith("coderunner: sandbox name")
    finally:
        for name in ("a", "b"):
            cr(env, "down", "--name", name, "--remove")


def test_container_names_and_default_paths(tmp_path, monkeypatch):
    """The default sandbox keeps the paths and container name it always had; others get their own."""
    from coderunner_cli import paths, sandbox

    home = tmp_path / "state"
    monkeypatch.delenv("CODERUNNER_NAME", raising=False)
    monkeypatch.delenv("CODERUNNER_SANDBOX", raising=False)
    assert paths.state_file() == home / "state.json" and paths.workspace() == home / "workspace"
    assert sandbox.sandbox_name() == "coderunner"
    monkeypatch.setenv("CODERUNNER_SANDBOX", "a")
    assert paths.state_file() == home / "sandboxes" / "a" / "state.json"
    assert paths.token_file() == home / "sandboxes" / "a" / "secrets" / "token"
    assert sandbox.sandbox_name() == "coderunner-a"
    monkeypatch.setenv("CODERUNNER_NAME", "mine")  # still overrides the container's name
    assert sandbox.sandbox_name() == "mine-a" and sandbox.sandbox_name("default") == "mine"
    monkeypatch.setenv("CODERUNNER_WORKSPACE", str(tmp_path / "ws"))  # moves the default sandbox's only
    assert paths.workspace("default") == tmp_path / "ws" and paths.workspace("a") != tmp_path / "ws"


# -- the Apple double ---------------------------------------------------------------------------


def test_two_apple_sandboxes_through_the_double(tmp_path):
    from tests.cli.test_apple import apple_env, argv_log, needs_root

    if needs_root.args[0]:
        pytest.skip(needs_root.kwargs["reason"])
    env = apple_env(tmp_path, "1.2.2")
    state = Path(env["CODERUNNER_HOME"])
    try:
        cr(env, "up", "--runtime", "apple", "--name", "a", check=0, timeout=180)
        cr(env, "up", "--runtime", "apple", "--name", "b", check=0, timeout=180)
        runs = [c for c in argv_log(env) if c[0] == "run"]
        assert [c[c.index("--name") + 1] for c in runs] == ["coderunner-a", "coderunner-b"]
        for n, c in zip("ab", runs, strict=True):
            assert f"{state}/sandboxes/{n}/workspace:/workspace" in c
        # the double keeps each guest's files apart by container name; host paths are what the other could name
        workspace = {n: state / "sandboxes" / n / "workspace" for n in ("a", "b")}
        procs = {}
        for me in ("a", "b"):
            procs[me] = subprocess.Popen(
                [
                    "coderunner",
                    "exec",
                    "--name",
                    me,
                    "-c",
                    "import sys\nopen('mine.txt', 'w').write(sys.argv[1])\nprint(open('mine.txt').read())",
                    me,
                ],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
        for me, p in procs.items():
            out, err = p.communicate(timeout=120)
            assert (p.returncode, out) == (0, f"{me}\n"), err
            assert (workspace[me] / "mine.txt").read_text() == me
        rows = _ls(env)
        assert {n: (r["runtime"], r["state"]) for n, r in rows.items()} == {
            "a": ("apple", "running"),
            "b": ("apple", "running"),
        }
        cr(env, "down", "--name", "a", check=0)
        assert ["stop", "--time", "10", "coderunner-a"] in argv_log(env)
        assert not any(c[0] == "stop" and c[-1] == "coderunner-b" for c in argv_log(env))
        assert cr(env, "exec", "--name", "b", "-c", "print('b lives')", check=0).stdout == "b lives\n"
        assert _ls(env)["a"]["state"] == "stopped"
    finally:
        for name in ("a", "b"):
            cr(env, "down", "--name", name, "--remove")


# -- docker -----------------------------------------------------------------------------------------


def test_two_docker_sandboxes(tmp_path):
    from tests.e2e.test_docker import HAVE_DOCKER, IMAGE, inspect

    if not HAVE_DOCKER:
        pytest.skip("set CODERUNNER_E2E_IMAGE to a built image and run a Docker engine")
    base = f"cr-multi-{uuid.uuid4().hex[:8]}"
    env = cli_env(tmp_path, CODERUNNER_NAME=base)
    state = Path(env["CODERUNNER_HOME"])
    try:
        for name in ("a", "b"):
            cr(env, "up", "--runtime", "docker", "--image", IMAGE, "--name", name, check=0, timeout=300)
        for name in ("a", "b"):
            mounts = {m["Destination"]: m["Source"] for m in inspect("docker", f"{base}-{name}")["Mounts"]}
            assert mounts["/workspace"] == str(state / "sandboxes" / name / "workspace")
        workspace = {n: state / "sandboxes" / n / "workspace" for n in ("a", "b")}
        _side_by_side(env, state, workspace)
        rows = _ls(env)
        assert {n: (r["runtime"], r["state"]) for n, r in rows.items()} == {
            "a": ("docker", "running"),
            "b": ("docker", "running"),
        }
        cr(env, "down", "--name", "a", check=0, timeout=120)
        assert inspect("docker", f"{base}-b")["State"]["Running"]
        assert not inspect("docker", f"{base}-a")["State"]["Running"]
        assert cr(env, "exec", "--name", "b", "-c", "print('b lives')", check=0).stdout == "b lives\n"
    finally:
        for name in ("a", "b"):
            cr(env, "down", "--name", name, "--remove", timeout=120)
