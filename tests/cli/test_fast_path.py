"""`coderunner exec` without typer: the entry point's hand parser answers exactly as the full CLI does.

Each command line runs twice against one real local sandbox: through the installed `coderunner`
(the fast path) and through app.main (the Typer CLI); stdout, stderr and exit code must match.
The plain forms must also import no typer, rich or click (`python -X importtime`).
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
    path = tmp_path_factory.mktemp("fast") / "show.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize(("argv", "stdin", "kind"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_fast_path_answers_as_the_full_cli(sandbox, script, argv, stdin, kind):
    argv = [a.replace("{script}", str(script)) for a in argv]
    entry = shutil.which("coderunner", path=sandbox["PATH"])
    full = _run([sys.executable, "-c", FULL_CLI, *argv], sandbox, stdin, script.parent)
    fast = _run([entry, *argv], sandbox, stdin, script.parent)
    cell = re.compile(r"Cell In\[\d+\]")  # a session's kernel counts its executions
    assert (fast.returncode, fast.stdout, cell.sub("Cell", fast.stderr)) == (
        full.returncode,
        full.stdout,
        cell.sub("Cell", full.stderr),
    )
    if kind == "fast":
        timed = _run([sys.executable, "-X", "importtime", entry, *argv], sandbox, stdin, script.parent)
        assert timed.returncode == full.returncode
        assert not HEAVY.findall(timed.stderr), f"imported on the fast path: {set(HEAVY.findall(timed.stderr))}"


def test_python_m_runs_the_fast_path(sandbox):
    proc = _run(
        [sys.executable, "-X", "importtime", "-m", "coderunner_cli", "exec", "-c", "print(9)"], sandbox, None, None
    )
    assert proc.returncode == 0 and proc.stdout == "9\n", proc.stderr[-2000:]
    assert not HEAVY.findall(proc.stderr)
