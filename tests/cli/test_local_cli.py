"""The CLI as a real subprocess against a real gateway in the `local` runtime."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

from tests.cli.conftest import cli_env, cr, needs_bwrap
from tests.conftest import descendants, pid_alive, pids_holding

pytestmark = needs_bwrap


def test_up_prints_url_and_is_idempotent(sandbox):
    assert sandbox["_URL"].startswith("http://127.0.0.1:")
    again = cr(sandbox, "up", check=0)
    assert again.stdout.strip() == sandbox["_URL"]
    assert "already running" in again.stderr
    status = json.loads(cr(sandbox, "status", "--json", check=0).stdout)
    assert status["running"] and status["healthy"] and status["runtime"] == "local"
    assert "weaker than a VM" in status["isolation"]


def test_exec_file_args_exit_code_and_streams_apart(sandbox, tmp_path):
    script = tmp_path / "tool.py"
    script.write_text("import sys\nprint('args', sys.argv[1:])\nprint('to stderr', file=sys.stderr)\nsys.exit(4)\n")
    r = cr(sandbox, "exec", str(script), "a", "--flag", check=4)
    assert r.stdout == "args ['a', '--flag']\n"
    assert r.stderr == "to stderr\n"


def test_exec_code_stdin_and_languages(sandbox, tmp_path):
    assert cr(sandbox, "exec", "-c", "print(6*7)", check=0).stdout == "42\n"
    r = cr(sandbox, "exec", "-c", "import sys; print(sys.stdin.read()[::-1])", input="abc", check=0)
    assert r.stdout == "cba\n"
    assert cr(sandbox, "exec", "-", input="print('from stdin')", check=0).stdout == "from stdin\n"
    sh = tmp_path / "job.sh"
    sh.write_text('echo "bash $1"; exit 3\n')
    r = cr(sandbox, "exec", str(sh), "arg", check=3)
    assert r.stdout == "bash arg\n"
    assert cr(sandbox, "exec", "--lang", "bash", "-c", "echo $((2+3))", check=0).stdout == "5\n"


def test_exec_outcomes_have_documented_exit_codes(sandbox):
    r = cr(sandbox, "exec", "-c", "1/0", check=1)
    assert "ZeroDivisionError" in r.stderr and r.stdout == ""
    r = cr(sandbox, "exec", "--timeout", "1", "-c", "import time; time.sleep(30)", check=124)
    assert "timed out" in r.stderr
    r = cr(sandbox, "exec", "does-not-exist.py", check=2)
    assert r.stderr.startswith("coderunner: no such file: does-not-exist.py")
    r = cr(sandbox, "exec", "--session", "no-such-session", "-c", "1", check=66)
    assert "no session" in r.stderr
    r = cr(sandbox, "exec", "-c", "import os; os.kill(os.getpid(), 9)", check=137)


def test_sessions_keep_state_and_save_images(sandbox, tmp_path):
    cr(sandbox, "session", "new", "work", check=0)
    cr(sandbox, "exec", "--session", "work", "-c", "x = 20", check=0)
    assert cr(sandbox, "exec", "-s", "work", "-c", "x * 2 + 2", check=0).stdout == "42\n"
    r = cr(
        sandbox,
        "exec",
        "-s",
        "work",
        "-c",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
        "--outputs",
        str(tmp_path / "figs"),
        check=0,
    )
    saved = list((tmp_path / "figs").glob("*.png"))
    assert len(saved) == 1 and saved[0].read_bytes()[:4] == b"\x89PNG"
    assert str(saved[0]) in r.stderr and r.stdout == ""
    r = cr(sandbox, "exec", "-s", "work", "-c", "raise ValueError('bad')", check=1)
    assert "ValueError: bad" in r.stderr
    rows = json.loads(cr(sandbox, "session", "ls", "--json", check=0).stdout)
    assert [s["name"] for s in rows].count("work") == 1
    cr(sandbox, "session", "restart", "work", check=0)
    assert "NameError" in cr(sandbox, "exec", "-s", "work", "-c", "x", check=1).stderr
    cr(sandbox, "session", "rm", "work", check=0)
    assert cr(sandbox, "session", "rm", "work").returncode == 66


def test_config_reaches_the_sandbox_masked_and_private(sandbox):
    assert (
        cr(sandbox, "exec", "-c", "import os; print(os.environ['SANDBOX_SECRET'])", check=0).stdout == "from-config\n"
    )
    assert (
        cr(sandbox, "exec", "-c", "import os; print(os.environ.get('CODERUNNER_RUNTIME'))", check=0).stdout == "None\n"
    )
    cfg = Path(sandbox["CODERUNNER_CONFIG"])
    cr(sandbox, "config", "set", "API_KEY", "sk-very-secret-value", check=0)
    assert oct(cfg.stat().st_mode & 0o777) == "0o600"
    shown = cr(sandbox, "config", "show", check=0).stdout
    assert "sk-very-secret-value" not in shown and "API_KEY=sk-" in shown
    assert "sk-very-secret-value" in cr(sandbox, "config", "show", "--reveal", check=0).stdout
    assert cr(sandbox, "config", "get", "API_KEY", check=0).stdout == "sk-very-secret-value\n"
    cr(sandbox, "config", "unset", "API_KEY", check=0)
    assert cr(sandbox, "config", "get", "API_KEY").returncode == 78
    assert cr(sandbox, "config", "set", "1BAD", "x").returncode == 78
    assert cr(sandbox, "config", "path", check=0).stdout.strip() == str(cfg)
    token = Path(sandbox["CODERUNNER_HOME"]) / "secrets" / "token"
    assert oct(token.stat().st_mode & 0o777) == "0o600"


def test_the_sandbox_cannot_read_the_users_home(sandbox):
    planted = Path.home() / f".coderunner-test-secret-{uuid.uuid4().hex}"
    planted.write_text("TOP SECRET")
    try:
        code = f"print(open({str(planted)!r}).read())"
        r = cr(sandbox, "exec", "-c", code, check=1)
        assert "TOP SECRET" not in r.stdout + r.stderr
        assert "No such file or directory" in r.stderr
        r = cr(
            sandbox,
            "exec",
            "--lang",
            "bash",
            "-c",
            f"ls -a {Path.home()} | grep -c coderunner-test-secret || true",
            check=0,
        )
        assert r.stdout.strip() == "0"
    finally:
        planted.unlink()
    r = cr(sandbox, "exec", "-c", "import os; print(os.getuid(), os.getcwd()); open('w.txt','w').write('ok')", check=0)
    assert r.stdout == "1000 /workspace\n"
    assert (Path(sandbox["CODERUNNER_HOME"]) / "workspace" / "w.txt").read_text() == "ok"


def test_sigint_interrupts_remote_session_code(sandbox):
    cr(sandbox, "session", "new", "long", check=0)
    cr(sandbox, "exec", "-s", "long", "-c", "kept = 'state'", check=0)
    proc = subprocess.Popen(
        ["coderunner", "exec", "-s", "long", "-c", "import time\nprint('started', flush=True)\ntime.sleep(60)"],
        env=sandbox,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 130
    deadline = time.monotonic() + 10
    while True:
        rows = json.loads(cr(sandbox, "session", "ls", "--json", check=0).stdout)
        if not next(s for s in rows if s["name"] == "long")["busy"]:
            break
        assert time.monotonic() < deadline, "the remote code kept running"
        time.sleep(0.1)
    assert cr(sandbox, "exec", "-s", "long", "-c", "print(kept)", check=0).stdout == "state\n"


def test_sigint_kills_a_remote_script(sandbox):
    marker = f"sigint-{uuid.uuid4().hex}.mark"
    proc = subprocess.Popen(
        [
            "coderunner",
            "exec",
            "-c",
            f"import time\n_hold = open({marker!r}, 'w')\nprint('started', flush=True)\ntime.sleep(60)",
        ],
        env=sandbox,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "started\n"
    pids = pids_holding(Path(sandbox["CODERUNNER_HOME"]) / "workspace" / marker)
    assert pids
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 130
    deadline = time.monotonic() + 10
    while any(map(pid_alive, pids)):
        assert time.monotonic() < deadline, "the script survived Ctrl-C"
        time.sleep(0.1)


def test_no_network_reaches_nothing(tmp_path):
    env = cli_env(tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]  # listening: a connection would be queued without accept()
    try:
        cr(env, "up", "--runtime", "local", "--no-network", check=0, timeout=180)
        assert json.loads(cr(env, "status", "--json", check=0).stdout)["url"].startswith("unix:")
        code = f"import socket\ns = socket.socket()\ns.settimeout(2)\nprint(s.connect_ex(('127.0.0.1', {port})) != 0)"
        assert cr(env, "exec", "-c", code, check=0).stdout == "True\n"
        r = cr(env, "exec", "-c", "import socket; print([n for _, n in socket.if_nameindex()])", check=0)
        assert r.stdout == "['lo']\n", "only a loopback interface of its own"
    finally:
        cr(env, "down", "--remove")
        listener.close()


def test_down_status_and_errors_when_not_running(tmp_path):
    env = cli_env(tmp_path)
    r = cr(env, "status", check=3)
    assert "coderunner up" in r.stdout
    r = cr(env, "exec", "-c", "print(1)", check=3)
    assert r.stderr == "coderunner: the sandbox is not running: start it with `coderunner up`\n"
    assert cr(env, "down", check=0).stderr == "coderunner: no sandbox is running: nothing to stop\n"
    assert cr(env, "session", "ls", check=3).returncode == 3


def test_down_stops_everything_and_up_starts_again(tmp_path):
    env = cli_env(tmp_path)
    cr(env, "up", "--runtime", "local", check=0, timeout=180)
    sup = int((tmp_path / "state" / "coderunner.pid").read_text())
    cr(env, "exec", "-c", "open('keep.txt', 'w').write('kept')", check=0)
    children = descendants(sup)
    assert children
    cr(env, "down", check=0)
    assert cr(env, "status").returncode == 3
    time.sleep(0.3)
    assert [p for p in [sup, *children] if pid_alive(p)] == []
    cr(env, "up", check=0, timeout=180)
    assert cr(env, "exec", "-c", "print(open('keep.txt').read())", check=0).stdout == "kept\n"
    cr(env, "down", "--remove", check=0)
    assert not (tmp_path / "state" / "workspace").exists()


def test_verbose_shows_runtime_commands(tmp_path):
    env = cli_env(tmp_path)
    r = cr(env, "--verbose", "up", "--runtime", "local", check=0, timeout=180)
    try:
        assert "spawn: sh -c" in r.stderr and "bwrap" in r.stderr
        assert r.stdout.strip().startswith("http://127.0.0.1:")
    finally:
        cr(env, "down", "--remove")


def test_help_is_useful():
    env = cli_env(Path("/tmp"))
    for args in (["--help"], ["exec", "--help"], ["up", "--help"], ["session", "--help"], ["config", "--help"]):
        r = cr(env, *args, check=0)
        assert "Usage: coderunner" in r.stdout
    assert "--with-ssh-agent" in cr(env, "up", "--help", check=0).stdout
    assert cr(env, "--version", check=0).stdout.startswith("coderunner ")


def test_killing_the_supervisor_ends_the_whole_sandbox(tmp_path):
    env = cli_env(tmp_path)
    cr(env, "up", "--runtime", "local", check=0, timeout=180)
    cr(env, "session", "new", check=0)  # a kernel too
    sup = int((tmp_path / "state" / "coderunner.pid").read_text())
    inside = descendants(sup)
    assert len(inside) >= 4  # bwrap, bwrap (pid 1), gateway, kernels
    os.kill(sup, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while [p for p in inside if pid_alive(p)]:
        assert time.monotonic() < deadline, f"outlived their parent: {[p for p in inside if pid_alive(p)]}"
        time.sleep(0.05)
    assert cr(env, "status").returncode == 3
    cr(env, "down", "--remove")


def test_auto_detect_picks_local_without_an_engine(tmp_path, monkeypatch):
    from coderunner_cli.runtimes import resolve

    bindir = tmp_path / "bin"
    bindir.mkdir()
    import shutil

    (bindir / "bwrap").symlink_to(shutil.which("bwrap"))
    monkeypatch.setenv("PATH", str(bindir))  # no docker, no podman
    runtime, source = resolve()
    assert runtime.name == "local" and source.startswith("auto-detected")
    monkeypatch.setenv("CODERUNNER_RUNTIME", "podman")
    assert resolve()[0].name == "podman" and resolve()[1] == "CODERUNNER_RUNTIME"
    assert resolve("apple")[1] == "--runtime"


def test_up_refuses_a_second_runtime_while_one_runs(sandbox):
    r = cr(sandbox, "up", "--runtime", "docker", check=2)
    assert "a local sandbox is running" in r.stderr


def test_browse_and_skills_from_the_cli(sandbox, tmp_path):
    import shutil
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    if shutil.which("chromium") is None:
        import pytest

        pytest.skip("no chromium")
    (tmp_path / "index.html").write_text(
        "<html><head><title>CLI page</title></head><body><h1>Hello CLI</h1><a href='/next'>next page</a></body></html>"
    )

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert "Hello CLI" in cr(sandbox, "browse", url, check=0).stdout
        assert cr(sandbox, "browse", url, "--format", "markdown", check=0).stdout.startswith("# Hello CLI")
        assert cr(sandbox, "browse", url, "--format", "links", check=0).stdout == f"{url}next\tnext page\n"
        shot = tmp_path / "shot.png"
        r = cr(sandbox, "browse", url, "--screenshot", str(shot), check=0)
        assert shot.read_bytes()[:4] == b"\x89PNG" and str(shot) in r.stderr and r.stdout == ""
        r = cr(sandbox, "browse", "file:///etc/passwd", check=65)
        assert r.stderr.startswith("coderunner: only http and https URLs")
    finally:
        server.shutdown()
    rows = json.loads(cr(sandbox, "skills", "ls", "--json", check=0).stdout)
    assert {"pdf-text-replace", "image-crop-rotate"} <= {s["name"] for s in rows}
    shown = cr(sandbox, "skills", "show", "pdf-text-replace", check=0).stdout
    assert "scripts/replace_text.py" in shown and "--find" in shown
    assert cr(sandbox, "skills", "show", "nope").returncode == 65


def test_user_skills_dir_is_mounted_read_only(sandbox):
    skills = Path(sandbox["CODERUNNER_HOME"]) / "skills"
    (skills / "my-skill").mkdir(parents=True)
    (skills / "my-skill" / "SKILL.md").write_text("---\nname: my-skill\ndescription: mine\n---\nDo things.\n")
    rows = json.loads(cr(sandbox, "skills", "ls", "--json", check=0).stdout)
    assert {"name": "my-skill", "source": "user"}.items() <= next(r for r in rows if r["name"] == "my-skill").items()
    r = cr(sandbox, "exec", "-c", "open('/run/coderunner/skills/my-skill/x', 'w')", check=1)
    assert "Read-only file system" in r.stderr


def test_a_gateway_python_below_tmp(tmp_path):
    """The local sandbox binds the gateway's interpreter dirs below its own /tmp: the dirs
    above them must be made traversable there too (a checkout in /tmp, as CI's may be)."""
    import site
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [pure] = [p for p in site.getsitepackages() if p.endswith("site-packages")][:1]
    inner = next((venv / "lib").glob("python3*")) / "site-packages"
    (inner / "outer.pth").write_text(f"import site; site.addsitedir({pure!r})\n")
    env = cli_env(tmp_path, CODERUNNER_GATEWAY_PYTHON=str(venv / "bin" / "python"))
    cr(env, "up", "--runtime", "local", check=0, timeout=180)
    try:
        assert cr(env, "exec", "-c", "import sys; print(sys.prefix)", check=0).stdout == f"{venv}\n"
    finally:
        cr(env, "down", "--remove")


def test_up_under_a_process_limit_of_the_users_keeps_it_and_starts(tmp_path):
    """`up` run with a hard RLIMIT_NPROC below what local asks for (its uid's processes + 1024)
    starts the sandbox under the user's stricter limit: setting a higher one failed in preexec_fn
    and `up` printed subprocess's traceback."""
    import shutil
    import sys

    if shutil.which("prlimit") is None:
        import pytest

        pytest.skip("prlimit (util-linux) is not installed")
    env = cli_env(tmp_path)
    env["SUDO_UID"] = env["SUDO_GID"] = str(47000 + os.getpid() % 1000)  # as root: a uid with no processes
    coderunner = str(Path(sys.executable).parent / "coderunner")
    up = subprocess.run(
        ["prlimit", "--nproc=400:400", coderunner, "up", "--runtime", "local"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert up.returncode == 0 and "Traceback" not in up.stderr, up.stderr
        assert cr(env, "exec", "-c", "import resource; print(resource.getrlimit(resource.RLIMIT_NPROC))").stdout == (
            "(400, 400)\n"
        )
    finally:
        cr(env, "down", "--remove")
