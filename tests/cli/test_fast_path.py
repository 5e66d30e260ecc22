"""`coderunner exec` and the top-level help without typer: the entry point answers exactly as the full CLI does.

Each command line runs twice against one real local sandbox: through the installed `coderunner`
(the fast path) and through app.main (the Typer CLI); stdout, stderr and exit code must match.
The plain forms must also import no typer, rich or click (`python -X importtime`); a plain script
exec imports no http.client either (its one request goes over a raw socket, _http.py). The help
comes from a cache the Typer CLI fills (_help.py): the same bytes, re-rendered when anything changes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.cli.conftest import cr, needs_bwrap

pytestmark = needs_bwrap

FULL_CLI = "import sys; sys.argv[0] = 'coderunner'; from coderunner_cli.app import main; main()"
SCRIPT = "import sys\nprint(sys.argv[1:], sys.stdin.read())\nprint('err', file=sys.stderr)\nsys.exit(3)\n"
HEAVY = re.compile(r"\|\s+(typer|rich|click)(\.|$)", re.M)
HTTP_CLIENT = re.compile(r"\|\s+(http\.client|email|ssl|pathlib|dataclasses)$", re.M)

# (argv after `coderunner`, stdin, kind): "fast" must import no typer/rich/click; "error" is parsed
# by the fast path but says a CoderunnerError as the CLI does; "full" is handed to the Typer CLI
CASES = [
    (["exec", "-c", "print(1)"], None, "fast"),
    (["exec", "--code=print(2)"], None, "fast"),
    (["exec", "-c", "import sys; print(sys.argv); sys.exit(4)", "a", "-b", "--c"], None, "fast"),
    (["exec", "{script}", "x", "--help", "-c", "y"], "piped in", "fast"),
    (["exec", "--timeout", "30", "-l", "bash", "-c", "echo hi; echo oops >&2; exit 5"], None, "fast"),
    (["exec", "--lang=python", "--name", "default", "-"], "print(6)", "fast"),
    (["exec", "-s", "fastpath", "-c", "x = 7"], None, "fast"),
    (["exec", "--session=fastpath", "-c", "print(x); 1/0"], None, "fast"),
    (["exec", "--timeout", "0.5", "-c", "import time; time.sleep(10)"], None, "fast"),
    (["exec", "-s", "nosuchsession", "-c", "1"], None, "error"),
    (["exec", "--timeout", "-1", "-c", "print(1)"], None, "error"),
    (["exec", "--lang", "ruby", "-c", "print(1)"], None, "error"),
    (["exec", "no-such-file.py"], None, "error"),
    (["exec"], None, "error"),
    (["exec", "-s", "bad name!", "-c", "1"], None, "error"),
    (["exec", "--name", "bad/name", "-c", "1"], None, "error"),
    (["exec", "-s", "fastpath", "{script}", "a"], None, "error"),
    (["exec", "--timeout", "soon", "-c", "1"], None, "full"),
    (["exec", "-c"], None, "full"),
    (["exec", "--bogus", "-c", "1"], None, "full"),
    (["exec", "-cprint(8)"], None, "full"),
    (["exec", "--", "{script}"], None, "full"),
    (["exec", "--help"], None, "full"),
    (["--version"], None, "full"),
    (["exec", "--timeout=5", "-c", "import sys; print(sys.argv)", "a", "-b"], None, "lean"),
    (["exec", "-c", "import sys; print(sys.stdin.read()[::-1])"], "abc", "lean"),
    (["exec", "-c", "print('\\u00e9t\\u00e9', end='')"], None, "lean"),
    (["exec", "{script}", "x", "y"], "in", "lean"),
    (["exec", "-l", "bash", "{script_sh}", "z"], None, "lean"),
    (["exec", "-c", "import nosuchmodule"], None, "lean"),
    (["exec", "{missing_sibling}"], None, "fast"),
    (["exec", "-c", "import matplotlib.pyplot as p; p.plot([1, 2]); p.show()"], None, "fast"),
    (["exec", "{no_ext}"], None, "fast"),
    (["--help"], None, "help"),
    (["-h"], None, "help"),
    ([], None, "help"),
]


def _run(cmd: list[str], env: dict[str, str], stdin: str | None, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        env=env,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=120,
        cwd=cwd,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def script(sandbox, tmp_path_factory):
    cr(sandbox, "session", "new", "fastpath", check=0)
    folder = tmp_path_factory.mktemp("fast")
    path = folder / "show.py"
    path.write_text(SCRIPT)
    (folder / "show.sh").write_text('echo "bash $1"; exit 4\n')
    (folder / "helper.py").write_text("X = 1\n")
    (folder / "uses_helper.py").write_text("import helper\n")
    (folder / "tool").write_text("#!/usr/bin/env python3\nprint('shebang')\n")
    return path


def _argv(argv: list[str], script) -> list[str]:
    names = {
        "{script}": script,
        "{script_sh}": script.with_name("show.sh"),
        "{missing_sibling}": script.with_name("uses_helper.py"),
        "{no_ext}": script.with_name("tool"),
    }
    return [str(names.get(a, a)).replace("{script}", str(script)) for a in argv]


@pytest.mark.parametrize(("argv", "stdin", "kind"), CASES, ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_fast_path_answers_as_the_full_cli(sandbox, script, argv, stdin, kind):
    argv = _argv(argv, script)
    entry = shutil.which("coderunner", path=sandbox["PATH"])
    full = _run([sys.executable, "-c", FULL_CLI, *argv], sandbox, stdin, script.parent)
    fast = _run([entry, *argv], sandbox, stdin, script.parent)
    cell = re.compile(r"Cell In\[\d+\]")  # a session's kernel counts its executions
    outputs = re.compile(r"output-\d+-")  # saved outputs are named by the CLI's pid
    assert (fast.returncode, fast.stdout, outputs.sub("output-", cell.sub("Cell", fast.stderr))) == (
        full.returncode,
        full.stdout,
        outputs.sub("output-", cell.sub("Cell", full.stderr)),
    )
    if kind in ("fast", "lean", "help"):  # help: the second call, from the cache
        timed = _run([sys.executable, "-X", "importtime", entry, *argv], sandbox, stdin, script.parent)
        assert timed.returncode == full.returncode
        assert not HEAVY.findall(timed.stderr), f"imported on the fast path: {set(HEAVY.findall(timed.stderr))}"
        if kind == "lean":  # after site.py (an editable install's finder imports pathlib there)
            ours = timed.stderr.split("| site\n", 1)[-1]
            assert not HTTP_CLIENT.findall(ours), set(HTTP_CLIENT.findall(ours))


def test_python_m_runs_the_fast_path(sandbox):
    proc = _run(
        [sys.executable, "-X", "importtime", "-m", "coderunner_cli", "exec", "-c", "print(9)"], sandbox, None, None
    )
    assert proc.returncode == 0 and proc.stdout == "9\n", proc.stderr[-2000:]
    assert not HEAVY.findall(proc.stderr)


@pytest.mark.parametrize("columns", ["200", "60", "", "30"])
def test_kept_help_is_the_typer_help_byte_for_byte(tmp_path, columns):
    """Rendered, then kept: both calls print exactly what the Typer CLI prints, in any width."""
    from tests.cli.conftest import cli_env

    env = cli_env(tmp_path, COLUMNS=columns)
    entry = shutil.which("coderunner", path=env["PATH"])
    for argv in ([], ["--help"], ["-h"]):
        full = subprocess.run([sys.executable, "-c", FULL_CLI, *argv], env=env, capture_output=True, timeout=60)
        first = subprocess.run([entry, *argv], env=env, capture_output=True, timeout=60)
        kept = subprocess.run([sys.executable, "-X", "importtime", entry, *argv], env=env, capture_output=True)
        expect = (full.returncode, full.stdout, full.stderr)
        assert (first.returncode, first.stdout, first.stderr) == expect
        timing = kept.stderr.decode()
        assert not HEAVY.findall(timing), "the second call rendered the help again"
        body = "\n".join(line for line in timing.splitlines() if not line.startswith("import time:"))
        assert (kept.returncode, kept.stdout, body.encode() + (b"\n" if body else b"")) == expect
    assert len(list((tmp_path / "state" / "cache").iterdir())) == 3


def test_kept_help_is_dropped_when_a_file_it_came_from_changes(tmp_path, monkeypatch):
    from coderunner_cli import _help

    monkeypatch.setenv("CODERUNNER_HOME", str(tmp_path))
    source = tmp_path / "module.py"
    source.write_text("HELP = 1\n")
    st = source.stat()
    k = _help.key(["--help"])
    _help.store(k, [(str(source), st.st_mtime_ns, st.st_size)], b"help\n", b"", 0)
    assert _help.load(k) == (b"help\n", b"", 0)
    assert _help.load(_help.key(["-h"])) is None
    source.write_text("HELP = 22\n")
    assert _help.load(k) is None
    # what a render records: the CLI's own modules and typer's (an edit to either renders again)
    files, out, err, code = _help.render(["--help"])
    paths = {f[0] for f in files}
    assert any(p.endswith("coderunner_cli/app.py") for p in paths)
    assert any("/typer/" in p for p in paths)
    assert code == 0 and b"[OPTIONS] COMMAND [ARGS]..." in out and err == b""


@pytest.mark.parametrize(
    "env",
    [
        {"CODERUNNER_URL": "http://127.0.0.1:1"},
        {"CODERUNNER_URL": "unix:/nonexistent/gateway.sock"},
        {"CODERUNNER_TOKEN": "wrong"},
        {"CODERUNNER_SANDBOX": "nosuch"},
    ],
    ids=["refused", "no-socket", "bad-token", "not-running"],
)
def test_lean_path_says_transport_errors_as_the_full_cli(sandbox, env):
    env = {**sandbox, **env}
    entry = shutil.which("coderunner", path=env["PATH"])
    argv = ["exec", "-c", "print(1)"]
    full = _run([sys.executable, "-c", FULL_CLI, *argv], env, None, None)
    fast = _run([entry, *argv], env, None, None)
    assert full.returncode != 0
    assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr)


def test_lean_path_over_a_unix_socket(tmp_path):
    """`--no-network` sandboxes answer on a unix socket: one chunked NDJSON answer, read to the end."""
    import socket
    import threading

    from tests.cli.conftest import cli_env

    path = str(tmp_path / "gw.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    lines = [
        b'{"type":"start","session_id":null}\n',
        b'{"type":"stdout","b64":"/wA="}\n',
        b'{"type":"stderr","text":"\\u00e9\\n"}\n',
        b'{"type":"done","status":"error","exit_code":7,"execution_time":0.1}\n',
    ]
    seen = []

    def serve():
        conn, _ = server.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
        while len(body) < length:
            body += conn.recv(65536)
        seen.append((head, body))
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n")
        *whole, last = lines
        for part in [*whole, last[:10], last[10:]]:  # one chunk per line, the last one in two
            conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        conn.sendall(b"0\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    env = cli_env(tmp_path, CODERUNNER_URL=f"unix:{path}", CODERUNNER_TOKEN="tok")
    entry = shutil.which("coderunner", path=env["PATH"])
    proc = subprocess.run([entry, "exec", "-c", "x", "a"], env=env, input=b"\xff", capture_output=True, timeout=60)
    thread.join(10)
    server.close()
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, b"\xff\x00", "é\n".encode())
    head, body = seen[0]
    assert head.startswith(b"POST /v1/execute HTTP/1.1\r\n") and b"Authorization: Bearer tok" in head
    assert body == b'{"code": "x", "stdin_b64": "/w==", "language": "python", "argv": ["a"]}'


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "/home/u"},
        {"HOME": "/home/u/"},
        {"HOME": "/root", "XDG_STATE_HOME": "/var/state"},
        {"HOME": "/root", "XDG_STATE_HOME": ""},
        {"HOME": "/root", "XDG_STATE_HOME": "relative/state"},
        {"HOME": "/root", "XDG_STATE_HOME": " /padded "},
        {"HOME": "relative"},
        {},
    ],
)
def test_state_home_is_platformdirs(monkeypatch, env):
    """Without $CODERUNNER_HOME the fast path finds the state where paths.home() (platformdirs) does."""
    from coderunner_cli import _fast, paths

    for name in ("HOME", "XDG_STATE_HOME", "CODERUNNER_HOME", "ANDROID_DATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _fast.state_home() == str(paths.home())
