"""The apple backend end to end through an executable `container` double on PATH.

The double (tests/doubles/container) is as strict as Apple's CLI at each
version it emulates: the options each version declares (generated from
apple/container's sources), its JSON shapes (the recorded fixtures), its
error texts and exit codes, `system start` registering before it installs the
kernel, `--publish-socket` creating nothing in the guest, the ssh socket per
version, and virtiofs ownership: the guest runs as the image's uid 1000 (or
as root with `--uid 0`) over files that belong to the host user. It starts
the real gateway as the "VM".
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, cr
from tests.conftest import pid_alive

ROOT = Path(__file__).resolve().parents[2]
DOUBLES = ROOT / "tests" / "doubles"
FIXTURES = ROOT / "tests" / "fixtures" / "apple-container"
VERSIONS = ["0.7.1", "0.8.0", "0.9.0", "0.10.0", "0.12.3", "1.0.0", "1.2.2"]

# the double runs the guest as root and as the image's uid 1000 (setpriv), as the VM does
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the double needs root to run the guest as other uids")


def vt(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def code_uid() -> int:
    return os.getuid() or 1000


def apple_env(tmp_path: Path, version: str, **extra: str) -> dict[str, str]:
    env = cli_env(
        tmp_path,
        CONTAINER_DOUBLE_VERSION=version,
        CONTAINER_DOUBLE_STATE=str(tmp_path / "d"),
        CONTAINER_DOUBLE_FIXTURES=str(FIXTURES),
        CONTAINER_DOUBLE_PYTHON=sys.executable,
        HOME=str(tmp_path / "home"),
        **extra,
    )
    (tmp_path / "home").mkdir(exist_ok=True)
    if os.geteuid() == 0:  # the guest's uid 1000 reaches shared dirs through these (virtiofs shares them directly)
        for p in [tmp_path, *tmp_path.parents]:
            os.chmod(p, os.stat(p).st_mode | 0o011)
    env["PATH"] = f"{DOUBLES}{os.pathsep}{env['PATH']}"
    env.pop("SSH_AUTH_SOCK", None)
    return env


def argv_log(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["CONTAINER_DOUBLE_STATE"]) / "argv.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def guest(env: dict[str, str], path: str) -> Path:
    """Where the double keeps a guest path (volumes are links to their host sources)."""
    return Path(env["CONTAINER_DOUBLE_STATE"]) / "guests" / "coderunner" / path.lstrip("/")


def py(env: dict[str, str], code: str, check: int = 0) -> str:
    return cr(env, "exec", "-c", code, check=check).stdout


def container(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["container", *args], env=env, text=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL
    )


def owned_by_code(path: Path) -> None:
    """Files of the host user, as virtiofs shows them: here the user code runs as (root: 1000)."""
    if os.getuid() == 0:
        for p in [path, *path.rglob("*")]:
            os.lchown(p, 1000, 1000)


@pytest.fixture
def agent(tmp_path):
    """A real ssh-agent holding one key: (socket, fingerprint line)."""
    if not (shutil.which("ssh-agent") and shutil.which("ssh-keygen")):
        pytest.skip("openssh-client is not installed")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cr-test", "-f", str(tmp_path / "key")], check=True
        )
        subprocess.run(
            ["ssh-add", str(tmp_path / "key")],
            env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
            check=True,
            capture_output=True,
        )
        yield str(sock)
    finally:
        proc.kill()
        proc.wait()


# -- the double is as strict as each version -----------------------------------------------


@pytest.mark.parametrize(
    ("version", "argv", "accepted"),
    [
        ("0.9.0", ["run", "--init", "img"], False),  # --init from 0.10.0
        ("0.10.0", ["run", "--init", "img"], True),
        ("0.7.1", ["system", "status", "--format", "json"], False),  # --format from 0.10
        ("0.12.3", ["system", "status", "--format", "json"], True),
        ("0.9.0", ["system", "start", "--timeout", "5"], False),
        ("1.2.2", ["stop", "--time", "7", "x"], True),
        ("0.7.1", ["stop", "--time", "7.5", "x"], False),  # Int32
        ("1.2.2", ["run", "--cpus", "0.5", "img"], False),  # Int64
        ("1.2.2", ["run", "--publish-sockets", "a:b", "img"], False),
        ("1.2.2", ["logs", "--tail", "5", "x"], False),  # -n only
        ("0.12.3", ["exec", "--workdir", "/w", "--uid", "1", "--gid", "1", "x", "ls"], True),
    ],
)
def test_double_refuses_what_the_version_does_not_declare(tmp_path, version, argv, accepted):
    env = apple_env(tmp_path, version)
    r = container(env, *argv)
    if accepted:
        assert r.returncode != 64, r.stderr
    else:
        assert r.returncode == 64
        assert r.stderr.startswith("Error: ") and ("Unknown option" in r.stderr or "is invalid" in r.stderr)


def test_double_unknown_option_message(tmp_path):
    r = container(apple_env(tmp_path, "0.8.0"), "run", "--init", "img")
    assert r.returncode == 64 and r.stderr.splitlines()[0] == "Error: Unknown option '--init'"


def test_option_tables_match_the_sources():
    """Set APPLE_CONTAINER_GIT to a clone of github.com/apple/container to check the tables."""
    repo = os.environ.get("APPLE_CONTAINER_GIT")
    if not repo:
        pytest.skip("APPLE_CONTAINER_GIT is not set")
    out = subprocess.run(
        [sys.executable, str(DOUBLES / "gen_container_options.py"), repo], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == json.loads((DOUBLES / "container-options.json").read_text())


# -- the whole life, at every version ------------------------------------------------------


@needs_root
@pytest.mark.parametrize("version", VERSIONS)
def test_lifecycle(tmp_path, version, agent):
    """Networked up with keys, credentials, ssh agent and mounts; exec, status, logs,
    down --timeout, resume, down --remove. Ownership as virtiofs shows it."""
    env = apple_env(tmp_path, version, CONTAINER_DOUBLE_LAUNCHD_SSH_AUTH_SOCK=agent)
    env["SSH_AUTH_SOCK"] = agent
    home = Path(env["HOME"])
    (home / ".claude").mkdir(mode=0o700)
    (home / ".claude" / "settings.json").write_text('{"k": 1}')
    os.chmod(home / ".claude" / "settings.json", 0o600)
    owned_by_code(home / ".claude")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "in.txt").write_text("dir mount\n")
    owned_by_code(data)
    single = tmp_path / "single.conf"
    single.write_text("file mount\n")
    (tmp_path / "coderunner.config").write_text("OPENAI_API_KEY=sk-test-123\n")
    (tmp_path / "extra.env").write_text("EXTRA_KEY=from-env-file\n")
    mounts = ["--mount", f"{data}:/data:ro"]
    if vt(version) >= (0, 9):
        mounts += ["--mount", f"{single}:/etc/single.conf:ro"]
    try:
        up = cr(
            env,
            "up",
            "--runtime",
            "apple",
            "--cpus",
            "2",
            "--memory",
            "2g",
            "--with-ssh-agent",
            "--with-credentials",
            "--env-file",
            str(tmp_path / "extra.env"),
            *mounts,
            check=0,
            timeout=180,
        )
        url = up.stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        assert "Building coderunner:latest" in up.stderr, "build progress is shown as it comes"
        calls = argv_log(env)
        assert calls.count(["system", "start", "--enable-kernel-install"]) == 1
        run = next(c for c in calls if c[0] == "run")
        port = url.rsplit(":", 1)[1]
        state = tmp_path / "state"
        uid, gid = code_uid(), os.getgid() or 1000
        expected = [
            "run",
            "--detach",
            "--name",
            "coderunner",
            "--cpus",
            "2",
            "--memory",
            "2g",
            "--uid",
            "0",
            "--gid",
            "0",
            "--volume",
            f"{state}/skills:/run/coderunner/skills:ro",
            "--volume",
            f"{state}/workspace:/workspace",
            "--volume",
            f"{data}:/data:ro",
            *(["--volume", f"{single}:/etc/single.conf:ro"] if vt(version) >= (0, 9) else []),
            "--volume",
            f"{home}/.claude:/home/sandbox/.claude:ro",
            "--env",
            "CODERUNNER_TOKEN",
            "--env",
            "OPENAI_API_KEY",
            "--env",
            "EXTRA_KEY",
            "--ssh",
            "--publish",
            f"127.0.0.1:{port}:8222",
            *(["--init"] if vt(version) >= (0, 10) else []),
            "coderunner:latest",
            "coderunner-gateway",
            "--workspace",
            "/workspace",
            "--isolation",
            "setid",
            "--code-uid",
            str(uid),
            "--code-gid",
            str(gid),
            "--base-home",
            "/home/sandbox",
            "--pass-env",
            "OPENAI_API_KEY",
            "--pass-env",
            "EXTRA_KEY",
            "--user-skills-dir",
            "/run/coderunner/skills",
            "--host",
            "0.0.0.0",
            "--port",
            "8222",
        ]
        assert run == expected
        assert not any("sk-test-123" in a or "from-env-file" in a for c in calls for a in c), "a secret in argv"

        status = json.loads(cr(env, "status", "--json", check=0).stdout)
        assert status["runtime"] == "apple" and status["state"] == "running" and status["healthy"]
        assert py(env, "import os; print(os.getuid())") == f"{uid}\n", "code runs as the host user's uid"
        py(env, "open('made.txt', 'w').write('x')")
        made = state / "workspace" / "made.txt"
        assert made.read_text() == "x" and made.stat().st_uid == uid, "workspace files stay the user's"
        assert (
            py(env, "import os; print(open(os.path.expanduser('~/.claude/settings.json')).read())") == '{"k": 1}\n'
        ), "mounted credentials are readable by the code"
        assert py(env, f"print(open({str(guest(env, '/data/in.txt'))!r}).read(), end='')") == "dir mount\n"
        if vt(version) >= (0, 9):
            assert py(env, f"print(open({str(guest(env, '/etc/single.conf'))!r}).read(), end='')") == "file mount\n"
        ssh = py(
            env,
            "import os, subprocess; print(os.environ['SSH_AUTH_SOCK']); "
            "print(subprocess.run(['ssh-add', '-l'], capture_output=True, text=True).stdout)",
        )
        guest_sock = "/run/host-services/ssh-auth.sock" if vt(version) < (0, 12) else "/var/host-services/ssh-auth.sock"
        assert ssh.splitlines()[0].endswith(guest_sock) and "cr-test" in ssh, ssh
        assert "coderunner_gateway" in cr(env, "logs", check=0).stdout

        assert (
            py(env, "import os; print(os.environ['OPENAI_API_KEY'], os.environ['EXTRA_KEY'])")
            == "sk-test-123 from-env-file\n"
        )
        cr(env, "down", "--timeout", "7", check=0)
        assert ["stop", "--time", "7", "coderunner"] in argv_log(env)
        assert json.loads(cr(env, "status", "--json", check=3).stdout)["state"] == "stopped"
        again = cr(env, "up", check=0, timeout=120)
        assert "resumed" in again.stderr
        assert ["start", "coderunner"] in argv_log(env)
        assert sum(1 for c in argv_log(env) if c[0] == "run") == 1, "a stopped sandbox resumes; it is not re-created"
        assert py(env, "print('back')") == "back\n"
    finally:
        cr(env, "down", "--remove")
    assert ["delete", "--force", "coderunner"] in argv_log(env)
    assert cr(env, "status").returncode == 3


@needs_root
@pytest.mark.parametrize("version", VERSIONS)
def test_no_network(tmp_path, version):
    """A unix socket published to the host; its path has a space (0.x prints it as a URL);
    a stale socket left by a crash does not stop `up` or a resume."""
    env = apple_env(tmp_path, version, CODERUNNER_HOME=str(tmp_path / "App Support"))
    run_dir = tmp_path / "App Support" / "run"
    run_dir.mkdir(parents=True, mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(run_dir / "gateway.sock"))
    stale.close()
    try:
        up = cr(env, "up", "--runtime", "apple", "--no-network", check=0, timeout=180)
        assert up.stdout.strip() == f"unix:{run_dir}/gateway.sock"
        run = next(c for c in argv_log(env) if c[0] == "run")
        assert run[run.index("--network") + 1] == "none"
        assert run[run.index("--publish-socket") + 1] == f"{run_dir}/gateway.sock:/run/coderunner/gateway.sock"
        assert run[-2:] == ["--uds", "/run/coderunner/gateway.sock"]
        assert py(env, "print(6 * 7)") == "42\n"
        assert json.loads(cr(env, "status", "--json", check=0).stdout)["healthy"]
        cr(env, "down", check=0)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(run_dir / "gateway.sock"))
        stale.close()
        assert "resumed" in cr(env, "up", check=0, timeout=120).stderr
        assert py(env, "print('back')") == "back\n"
    finally:
        cr(env, "down", "--remove")


# -- the kernel and the system -------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("version", VERSIONS)
def test_kernel_download_interrupted_then_installed(tmp_path, version):
    """The first start times out in the kernel download (the API server already registered):
    the next `up` installs the kernel instead of failing in `run`."""
    env = apple_env(tmp_path, version, CONTAINER_DOUBLE_KERNEL_HANG="1")
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
    assert container(env, "system", "status").returncode == 0, "registered, without a kernel"
    del env["CONTAINER_DOUBLE_KERNEL_HANG"]
    try:
        up = cr(env, "up", "--runtime", "apple", check=0, timeout=180)
        assert up.stdout.startswith("http://127.0.0.1:")
        assert py(env, "print('kernel')") == "kernel\n"
    finally:
        cr(env, "down", "--remove")


def test_build_waits_for_the_system_only_as_long_as_told(tmp_path):
    """`coderunner build` starts the container system first: its --timeout bounds that wait."""
    env = apple_env(tmp_path, "1.2.2", CONTAINER_DOUBLE_KERNEL_HANG="1")
    t0 = time.monotonic()
    r = cr(env, "build", "--runtime", "apple", "--timeout", "2", check=75, timeout=60)
    assert time.monotonic() - t0 < 20
    assert "did not finish within 2s" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert cr(env, "build", "--runtime", "apple", "--timeout", "0", check=2).stderr.count("\n") == 1


def test_run_without_a_kernel_fails_like_the_tool(tmp_path):
    env = apple_env(tmp_path, "1.2.2")
    assert container(env, "system", "start", "--disable-kernel-install").returncode == 0
    assert container(env, "build", "--tag", "img", str(ROOT / "container_image")).returncode != 0, "builds in a VM"
    assert container(env, "image", "pull", "img").returncode == 0
    r = container(env, "run", "--detach", "img")
    assert r.returncode == 1 and "default kernel not configured for architecture arm64" in r.stderr


def test_system_start_without_the_flag_and_stdin_closed_fails(tmp_path):
    r = container(apple_env(tmp_path, "0.12.3"), "system", "start")
    assert r.returncode == 1 and "failed to read user input" in r.stderr


# -- refused before anything starts ----------------------------------------------------------


@pytest.mark.parametrize("version", ["0.7.1", "0.8.0"])
def test_file_mount_refused_before_0_9(tmp_path, version):
    env = apple_env(tmp_path, version)
    single = tmp_path / "single.conf"
    single.write_text("x")
    r = cr(env, "up", "--runtime", "apple", "--mount", f"{single}:/etc/single.conf", timeout=120)
    assert r.returncode == 2, r.stderr
    assert "shares directories only" in r.stderr and "0.9" in r.stderr
    assert not any(c[0] == "run" for c in argv_log(env))


@pytest.mark.parametrize("cpus", ["0.5", "1.5"])
def test_fractional_cpus_refused(tmp_path, cpus):
    env = apple_env(tmp_path, "1.2.2")
    r = cr(env, "up", "--runtime", "apple", "--cpus", cpus, timeout=120)
    assert r.returncode == 2 and "whole CPUs" in r.stderr, r.stderr
    assert not any(c[0] == "run" for c in argv_log(env))


def test_pull_progress_is_live_and_failure_is_one_clear_line(tmp_path):
    env = apple_env(tmp_path, "0.12.3", CONTAINER_DOUBLE_PULL_FAILS="1")
    r = cr(env, "up", "--runtime", "apple", "--image", "example/coderunner:1.0", timeout=60)
    assert r.returncode == 71
    assert "Fetching image example/coderunner:1.0" in r.stderr, "pull progress is shown as it comes"
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("coderunner: `container image pull") and "coderunner build" in last


# -- parsing each version's shapes -----------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_status_parsing_of_every_version(tmp_path, version, monkeypatch):
    """Running, stopped and missing containers, parsed from each version's shapes."""
    from coderunner_cli.runtimes.apple import AppleRuntime

    env = apple_env(tmp_path, version)
    for key in ("PATH", "CONTAINER_DOUBLE_VERSION", "CONTAINER_DOUBLE_STATE", "CONTAINER_DOUBLE_FIXTURES"):
        monkeypatch.setenv(key, env[key])
    rt = AppleRuntime()
    assert rt.version() == vt(version)
    rt.prepare(30)
    assert rt.status("nosuch").state == "missing"
    state = Path(env["CONTAINER_DOUBLE_STATE"]) / "containers"
    rec = {
        "name": "box",
        "image": "coderunner:latest",
        "args": [],
        "volumes": [],
        "ports": [["127.0.0.1", 9999, 8222]],
        "sockets": [],
        "env": [],
        "env_files": [],
        "ssh": False,
        "init": False,
        "network": None,
        "cpus": 4,
        "pid": os.getpid(),
    }
    (state / "box.json").write_text(json.dumps(rec))
    assert rt.status("box").state == "running"
    assert rt.url("box") == "http://127.0.0.1:9999"
    rec.update(
        ports=[],
        network="none",
        sockets=[["/Users/me/Library/Application Support/cr/gateway.sock", "/run/coderunner/gateway.sock"]],
    )
    (state / "box.json").write_text(json.dumps(rec))
    assert rt.url("box") == "unix:/Users/me/Library/Application Support/cr/gateway.sock"
    rec["pid"] = None
    (state / "box.json").write_text(json.dumps(rec))
    assert rt.status("box").state == "stopped"


@pytest.mark.parametrize("version", ["0.7.1", "0.12.3", "1.2.2"])
def test_fixture_shapes_parse(version):
    """The recorded outputs themselves: state, IP and socket path from each shape."""
    from coderunner_cli.runtimes.apple import _image_name, _ip, _path, _state

    running = json.loads((FIXTURES / version / "inspect-running.json").read_text())[0]
    stopped = json.loads((FIXTURES / version / "inspect-stopped.json").read_text())[0]
    assert _state(running) == "running" and _state(stopped) == "stopped"
    assert _ip(running) == "192.168.64.3"
    assert _ip(stopped) is None
    images = json.loads((FIXTURES / version / "image-list.json").read_text())
    assert _image_name(images[0]) == "coderunner:latest"
    no_net = json.loads((FIXTURES / version / "inspect-running-no-network.json").read_text())[0]
    sock = no_net["configuration"]["publishedSockets"][0]
    assert _path(sock["hostPath"]) == "/Users/me/Library/Application Support/coderunner/run/gateway.sock"
