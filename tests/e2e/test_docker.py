"""The whole stack in a real container: `coderunner up --runtime docker` with the built image.

Runs when CODERUNNER_E2E_IMAGE names a built image and a Docker engine answers
(`scripts/test` and `.ci/run` arrange both).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, cr

IMAGE = os.environ.get("CODERUNNER_E2E_IMAGE")
PODMAN_IMAGE = os.environ.get("CODERUNNER_E2E_PODMAN_IMAGE")


def _engine_answers(binary: str) -> bool:
    return shutil.which(binary) is not None and subprocess.run([binary, "info"], capture_output=True).returncode == 0


HAVE_DOCKER = bool(IMAGE) and _engine_answers("docker")
HAVE_PODMAN = bool(PODMAN_IMAGE) and _engine_answers("podman")
pytestmark = pytest.mark.skipif(
    not HAVE_DOCKER, reason="set CODERUNNER_E2E_IMAGE to a built image and run a Docker engine (scripts/test does both)"
)
ENGINES = [
    pytest.param(("docker", IMAGE), id="docker"),
    pytest.param(
        ("podman", PODMAN_IMAGE),
        id="podman",
        marks=pytest.mark.skipif(not HAVE_PODMAN, reason="no podman image (CODERUNNER_E2E_PODMAN_IMAGE)"),
    ),
]


def inspect(engine: str, name: str) -> dict:
    return json.loads(subprocess.run([engine, "inspect", name], capture_output=True, text=True, check=True).stdout)[0]


def start_box(request, tmp_path_factory):
    """`coderunner up` on the engine of ``request.param``; yields the CLI env (for a module fixture)."""
    engine, image = request.param
    home = tmp_path_factory.mktemp(f"e2e-{engine}")
    name = f"cr-e2e-{engine}-{uuid.uuid4().hex[:8]}"
    env = cli_env(home, CODERUNNER_NAME=name)
    (home / "coderunner.config").write_text("E2E_SECRET=shh-123\n")
    up = cr(env, "up", "--runtime", engine, "--image", image, "--cpus", "1", "--memory", "1g", timeout=300)
    assert up.returncode == 0, up.stderr
    env.update(_URL=up.stdout.strip(), _NAME=name, _ENGINE=engine, _IMAGE=image)
    yield env
    cr(env, "down", "--remove", timeout=120)


@pytest.fixture(scope="module", params=ENGINES)
def box(request, tmp_path_factory):
    yield from start_box(request, tmp_path_factory)


def test_status_exec_and_session(box):
    status = json.loads(cr(box, "status", "--json", check=0).stdout)
    assert status["runtime"] == box["_ENGINE"] and status["healthy"] and status["state"] == "running"
    r = cr(
        box,
        "exec",
        "-c",
        "import sys, os\nprint(sys.version_info >= (3, 12), os.getuid(), os.environ['E2E_SECRET'])\n"
        "print('err', file=sys.stderr)\nsys.exit(5)",
        check=5,
    )
    assert r.stdout == "True 1000 shh-123\n" and r.stderr == "err\n"
    cr(box, "session", "new", "e2e", check=0)
    cr(box, "exec", "-s", "e2e", "-c", "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})", check=0)
    assert cr(box, "exec", "-s", "e2e", "-c", "int(df.a.sum())", check=0).stdout == "6\n"
    r = cr(
        box,
        "exec",
        "-s",
        "e2e",
        "-c",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
        "--outputs",
        str(Path(box["CODERUNNER_HOME"]) / "figs"),
        check=0,
    )
    assert list((Path(box["CODERUNNER_HOME"]) / "figs").glob("*.png"))


def test_streaming_and_the_data_stack(box):
    from coderunner_cli import CodeRunner

    token = (Path(box["CODERUNNER_HOME"]) / "secrets" / "token").read_text().strip()
    with CodeRunner(box["_URL"], token) as client:
        t0 = time.monotonic()
        first = None
        with client.stream("import time\nprint('a', flush=True)\ntime.sleep(1)\nprint('b')") as events:
            kinds = []
            for e in events:
                kinds.append(e["type"])
                if e["type"] == "stdout" and first is None:
                    first = time.monotonic() - t0
        assert kinds[0] == "start" and kinds[-1] == "done" and first < 0.9
        code = (
            "import numpy, scipy, sklearn, statsmodels, seaborn, pypdf, pdfplumber, docx, pptx, openpyxl, bs4, "
            "requests, httpx, duckdb, sympy, PIL\nprint(duckdb.sql('select 42').fetchall()[0][0])"
        )
        assert client.execute(code).stdout == "42\n"
        assert client.execute("node --version", language="bash").stdout.startswith("v")


def test_browse_and_mcp_inside_the_container(box):
    cr(box, "session", "new", "web", "--lang", "bash", check=0)
    cr(
        box,
        "exec",
        "-s",
        "web",
        "--lang",
        "bash",
        "-c",
        "mkdir -p site && echo '<html><title>In box</title><body><h1>Hello container</h1></body></html>' > site/index.html"
        " && (cd site && nohup python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 &) && sleep 1",
        check=0,
    )
    assert "Hello container" in cr(box, "browse", "http://127.0.0.1:8765/", check=0, timeout=120).stdout

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command="coderunner", args=["mcp"], env={k: v for k, v in box.items() if not k.startswith("_")}
    )

    async def main():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            await s.call_tool("execute_python_code", {"command": "n = 20"})
            return await s.call_tool("execute_python_code", {"command": "n + 22"})

    assert asyncio.run(main()).content[0].text.strip() == "42"


def test_logs_down_and_resume(box):
    assert "listening on" in cr(box, "logs", check=0).stdout
    cr(box, "exec", "-c", "open('kept.txt', 'w').write('still here')", check=0)
    cr(box, "down", check=0, timeout=120)
    info = inspect(box["_ENGINE"], box["_NAME"])
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0, "SIGTERM stops it cleanly"
    up = cr(box, "up", check=0, timeout=180)
    assert "resumed" in up.stderr
    assert cr(box, "exec", "-c", "print(open('kept.txt').read())", check=0).stdout == "still here\n"


def test_isolation_limits_and_loopback_only(box):
    planted = Path.home() / f".coderunner-e2e-{uuid.uuid4().hex}"
    planted.write_text("HOST SECRET")
    try:
        r = cr(box, "exec", "-c", f"print(open({str(planted)!r}).read())", check=1)
        assert "HOST SECRET" not in r.stdout + r.stderr
    finally:
        planted.unlink()
    host = inspect(box["_ENGINE"], box["_NAME"])["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (10**9, 1 << 30, 1024)
    code = r"""
import os
def first(*paths):
    for p in paths:
        if os.path.exists(p):
            return open(p).read().strip()
print(first('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'))
print(first('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max'))
q = first('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us')
print(q.split()[0])
"""
    memory, pids, quota = cr(box, "exec", "-c", code, check=0).stdout.split()
    assert (int(memory), int(pids), int(quota)) == (1 << 30, 1024, 100000)
    r = cr(
        box,
        "exec",
        "-c",
        "import os\nfor i in range(2000):\n    if os.fork() == 0:\n        import time; time.sleep(5); os._exit(0)",
    )
    assert r.returncode == 1 and "Resource temporarily unavailable" in r.stderr, "the process limit holds"
    bindings = inspect(box["_ENGINE"], box["_NAME"])["NetworkSettings"]["Ports"]["8222/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    port = int(bindings[0]["HostPort"])
    others = [
        ip
        for ip in subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        if ":" not in ip and not ip.startswith("127.")
    ]
    for ip in others:  # this machine's own non-loopback addresses
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((ip, port)) != 0, f"the gateway answers on {ip}"


@pytest.mark.parametrize("engine_image", ENGINES)
def test_no_network_reaches_nothing(tmp_path, engine_image):
    engine, image = engine_image
    name = f"cr-e2e-nonet-{uuid.uuid4().hex[:8]}"
    env = cli_env(tmp_path, CODERUNNER_NAME=name)
    try:
        cr(env, "up", "--runtime", engine, "--image", image, "--no-network", check=0, timeout=300)
        assert json.loads(cr(env, "status", "--json", check=0).stdout)["url"].startswith("unix:")
        r = cr(env, "exec", "-c", "import socket\nprint([n for _, n in socket.if_nameindex()])", check=0)
        assert r.stdout == "['lo']\n"
        bridge = json.loads(
            subprocess.run(
                ["docker", "network", "inspect", "bridge"], capture_output=True, text=True, check=True
            ).stdout
        )[0]
        ipam = bridge["IPAM"]["Config"][0]
        import ipaddress  # this machine, as containers see it: the bridge's gateway

        gw_ip = ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))
        code = f"import socket\ns = socket.socket()\ns.settimeout(2)\nprint(s.connect_ex(('{gw_ip}', 22)) != 0)"
        assert cr(env, "exec", "-c", code, check=0).stdout == "True\n"
    finally:
        cr(env, "down", "--remove", timeout=120)


def test_healthcheck_reports_healthy(box):
    if box["_ENGINE"] == "podman":  # podman runs healthchecks from systemd timers: run it by hand
        r = subprocess.run(["podman", "healthcheck", "run", box["_NAME"]], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        return
    deadline = time.monotonic() + 90
    while (health := inspect("docker", box["_NAME"])["State"].get("Health", {}).get("Status")) != "healthy":
        assert health in ("starting", None), f"HEALTHCHECK says {health}"
        assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
        time.sleep(1)


def test_coderunner_build_uses_the_runtime(tmp_path):
    base = subprocess.run(
        ["docker", "inspect", "--format", '{{index .Config.Labels "coderunner.base"}}', IMAGE],
        capture_output=True,
        text=True,
    ).stdout.strip()
    env = cli_env(tmp_path)
    tag = f"coderunner:e2e-build-{uuid.uuid4().hex[:6]}"
    args = ["build", "--runtime", "docker", "--tag", tag]
    if base:
        args += ["--base-image", base]
    r = cr(env, *args, timeout=1800)
    try:
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"built {tag} with docker" in r.stderr
        same = subprocess.run(
            ["docker", "run", "--rm", tag, "python3", "-c", "import coderunner_gateway; print('ok')"],
            capture_output=True,
            text=True,
        )
        assert same.stdout == "ok\n"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    r = cr(env, "build", "--runtime", "docker", "--build-arg", "NOEQUALS")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


def test_offline_build_from_a_wheelhouse(tmp_path):
    """With build/wheels/*.whl, pip installs from them alone: the build passes with no network."""
    root = Path(__file__).resolve().parents[2]
    context = tmp_path / "context"
    shutil.copytree(root / "container_image", context, ignore=shutil.ignore_patterns("wheels", "__pycache__"))
    wheels = context / "build" / "wheels"
    wheels.mkdir()
    deps = [
        line
        for line in (context / "requirements-image.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    import tomllib

    deps += tomllib.loads((context / "pyproject.toml").read_text())["project"]["dependencies"]
    python = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            IMAGE,
            "python3",
            "-c",
            "import sys; print(f'{sys.version_info[0]}{sys.version_info[1]}')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    platforms = [
        a
        for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")
        for a in ("--platform", p)
    ]
    subprocess.run(
        [
            os.sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "-d",
            str(wheels),
            "--only-binary=:all:",
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--abi",
            f"cp{python}",
            *platforms,
            *deps,
            "setuptools",
            "wheel",
        ],
        check=True,
        capture_output=True,
    )
    (wheels / f"run-{uuid.uuid4().hex}.txt").write_text("a new layer: the offline pip install really runs")
    base = (
        subprocess.run(
            ["docker", "inspect", "--format", '{{index .Config.Labels "coderunner.base"}}', IMAGE],
            capture_output=True,
            text=True,
        ).stdout.strip()
        or "python:3.12-slim-bookworm"
    )
    tag = f"coderunner:offline-{uuid.uuid4().hex[:6]}"
    r = subprocess.run(
        ["docker", "build", "--network", "none", "-t", tag, "--build-arg", f"BASE_IMAGE={base}", str(context)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    try:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        assert "Looking in links: /tmp/wheels" in r.stdout
        ok = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                tag,
                "python",
                "-c",
                "import coderunner_gateway, pandas, sklearn, duckdb; print('ok')",
            ],
            capture_output=True,
            text=True,
        )
        assert ok.stdout == "ok\n"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
