"""`coderunner exec` as a filter on a real local sandbox: bytes in and out exactly; figures and HTML saved."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from .conftest import cr

MB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def run(
    env: dict[str, str], *args: str, input: bytes | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["coderunner", *args],
        env=env,
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def test_filter_gets_and_gives_a_megabyte_of_random_bytes(sandbox, tmp_path):
    data = os.urandom(MB)
    script = tmp_path / "filter.py"
    script.write_text(
        "import sys\nb = sys.stdin.buffer.read()\nsys.stdout.buffer.write(b[::-1])\nsys.stderr.buffer.write(b[:1000])\n"
    )
    r = run(sandbox, "exec", str(script), input=data)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout) == MB and r.stdout == data[::-1]
    assert r.stderr == data[:1000]


def test_generator_output_redirected_to_a_file_is_exact(sandbox, tmp_path):
    gen = tmp_path / "gen.py"
    gen.write_text("import random, sys\nsys.stdout.buffer.write(random.Random(9).randbytes(1 << 20))\n")
    out = tmp_path / "out.bin"
    with out.open("wb") as f:
        r = subprocess.run(
            ["coderunner", "exec", str(gen)],
            env=sandbox,
            stdout=f,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr[-2000:]
    import random

    want = random.Random(9).randbytes(MB)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(want).hexdigest()


def test_stdin_and_stdout_that_are_not_utf8(sandbox):
    r = run(sandbox, "exec", "-c", "import sys; print(sys.stdin.buffer.read())", input=b"\xffabc")
    assert (r.returncode, r.stdout) == (0, b"b'\\xffabc'\n"), r.stderr
    r = run(sandbox, "exec", "-c", "import sys; sys.stdout.buffer.write(b'\\xff\\xfe')")
    assert (r.returncode, r.stdout) == (0, b"\xff\xfe"), r.stderr


def test_a_script_figure_is_saved(sandbox, tmp_path):
    outputs = Path(sandbox["CODERUNNER_OUTPUTS"])
    before = set(outputs.glob("*")) if outputs.exists() else set()
    r = cr(sandbox, "exec", str(ROOT / "examples" / "plot.py"), check=0)
    saved = sorted(set(outputs.glob("*.png")) - before)
    assert len(saved) == 1, r.stderr
    assert saved[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved image/png to {saved[0]}" in r.stderr
    assert "non-interactive" not in r.stderr  # Agg's warning that show() does nothing


def test_html_display_is_saved(sandbox, tmp_path):
    cr(sandbox, "session", "new", "html", check=0)
    try:
        r = cr(
            sandbox,
            "exec",
            "--session",
            "html",
            "--outputs",
            str(tmp_path / "o"),
            "-c",
            "from IPython.display import HTML, display; display(HTML('<b>hi</b>'))",
            check=0,
        )
        saved = list((tmp_path / "o").glob("*.html"))
        assert len(saved) == 1, r.stderr
        assert saved[0].read_text() == "<b>hi</b>"
    finally:
        cr(sandbox, "session", "rm", "html")


def test_client_twins_are_byte_exact(gateway):
    import asyncio

    from coderunner_cli.client import AsyncCodeRunner, CodeRunner

    data = os.urandom(MB)
    code = "import sys\nb = sys.stdin.buffer.read()\nsys.stdout.buffer.write(b)\nsys.stderr.buffer.write(b'\\xff')\n"
    with CodeRunner(gateway.url, gateway.token) as c:
        r = c.execute(code, stdin=data, timeout=60)
        assert (r.stdout_bytes, r.stderr_bytes, r.stderr) == (data, b"\xff", "\ufffd")
        assert r.stdout == data.decode("utf-8", "replace")
        assert c.execute("print(input())", stdin="é\n".encode()).stdout == "é\n"  # UTF-8 bytes go as text

    async def twin():
        async with AsyncCodeRunner(gateway.url, gateway.token) as ac:
            return await ac.execute(code, stdin=data, timeout=60)

    r = asyncio.run(twin())
    assert (r.stdout_bytes, r.stderr_bytes) == (data, b"\xff")
