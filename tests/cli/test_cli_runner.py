"""The CLI in-process through Typer's CliRunner: parsing, errors, exit codes, config."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from coderunner_cli.app import app

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def test_version_and_help():
    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.startswith("coderunner 0.")
    r = invoke("--help")
    assert r.exit_code == 0
    for command in ("up", "down", "status", "exec", "session", "config", "logs", "shell", "run"):
        assert command in r.stdout


def test_not_running_errors_are_one_line_with_exit_codes():
    r = invoke("status")
    assert r.exit_code == 3 and "coderunner up" in r.stdout
    r = invoke("exec", "-c", "print(1)")
    assert r.exit_code == 3
    assert r.stderr.strip() == "coderunner: the sandbox is not running: start it with `coderunner up`"
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert invoke("session", "ls").exit_code == 3
    assert invoke("logs").exit_code == 3


def test_exec_input_errors():
    r = invoke("exec", "nope.py")
    assert r.exit_code == 2 and r.stderr.strip() == "coderunner: no such file: nope.py"
    r = invoke("exec")
    assert r.exit_code == 2 and "give a FILE" in r.stderr
    r = invoke("up", "--runtime", "vmware")
    assert r.exit_code == 2 and "unknown runtime 'vmware'" in r.stderr
    r = invoke("run", "notepad")
    assert r.exit_code == 2


def test_config_roundtrip_masked_0600(tmp_path):
    cfg = tmp_path / "coderunner.config"
    assert invoke("config", "set", "ANTHROPIC_API_KEY", "sk-ant-abcdefghijklmnop").exit_code == 0
    assert oct(os.stat(cfg).st_mode & 0o777) == "0o600"
    r = invoke("config", "show")
    assert "abcdefghijklmnop" not in r.stdout and r.stdout.startswith("ANTHROPIC_API_KEY=sk-")
    assert json.loads(invoke("config", "show", "--json", "--reveal").stdout) == {
        "ANTHROPIC_API_KEY": "sk-ant-abcdefghijklmnop"
    }
    assert invoke("config", "set", "WITH SPACE", "x").exit_code == 78
    cfg.write_text("this is not dotenv\n")
    r = invoke("config", "show")
    assert r.exit_code == 78 and "expected KEY=VALUE" in r.stderr


def test_up_refuses_bad_mount_and_missing_env_file(tmp_path):
    r = invoke("up", "--runtime", "local", "--mount", "nocolon")
    assert r.exit_code == 2 and "SRC:DST" in r.stderr
    r = invoke("up", "--runtime", "local", "--env-file", str(tmp_path / "missing.env"))
    assert r.exit_code == 78 and "does not exist" in r.stderr


def test_bad_arguments_exit_2_before_any_request(tmp_path):
    for args, words in (
        (["exec", "--lang", "ruby", "-c", "puts 1"], "--lang 'ruby': use python or bash"),
        (["exec", "--timeout", "0", "-c", "1"], "--timeout 0: give a positive number of seconds"),
        (["exec", "--timeout", "-3", "-c", "1"], "--timeout -3: give a positive number"),
        (["browse", "-f", "pdf", "http://example.com"], "--format 'pdf': use one of text, markdown, html, links"),
        (["browse", "--timeout", "0", "http://example.com"], "--timeout 0"),
        (["session", "new", "a/b"], "session name 'a/b': use letters, digits"),
        (["session", "new", "x" * 65], "(at most 64)"),
        (["session", "rm", "a b"], "session name 'a b'"),
        (["session", "new", "--lang", "ruby"], "--lang 'ruby'"),
        (["exec", "-s", "../x", "-c", "1"], "session name '../x'"),
    ):
        r = invoke(*args)
        assert r.exit_code == 2, (args, r.exit_code, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("coderunner: ") and words in r.stderr, r.stderr
    assert invoke("session", "new", "ok-name_1.x").exit_code == 3, "a good name goes on to the sandbox"


def test_scripts_of_unknown_language_are_refused_naming_lang(tmp_path):
    rb = tmp_path / "hello.rb"
    rb.write_text("puts 'hi'\n")
    bare = tmp_path / "tool"
    bare.write_text("print('no extension, no #!')\n")
    ruby = tmp_path / "shebang-ruby"
    ruby.write_text("#!/usr/bin/env ruby\nputs 1\n")
    for path in (rb, bare, ruby):
        r = invoke("exec", str(path))
        assert r.exit_code == 2, r.stderr
        assert r.stderr == (
            f"coderunner: cannot tell the language of {path} (not .py, .sh or .bash, no python or sh "
            "#! line): pass --lang python or --lang bash\n"
        )
    py = tmp_path / "tool-py"
    py.write_text("#!/usr/bin/env -S python3 -u\nprint(1)\n")
    assert invoke("exec", str(py)).exit_code == 3, "known from its #! line: on to the sandbox"
    assert invoke("exec", "--lang", "python", str(rb)).exit_code == 3


def test_help_has_no_escape_codes_under_no_color_and_fits_80_columns():
    import pty
    import subprocess

    from tests.cli.conftest import cli_env

    for args in ([], ["up"], ["exec"], ["session"], ["config"], ["browse"], ["down"]):
        leader, follower = pty.openpty()
        env = cli_env(Path("/tmp"), COLUMNS="200", NO_COLOR="1", TERM="xterm-256color")
        proc = subprocess.run(
            ["coderunner", *args, "--help"], env=env, stdin=follower, stdout=follower, stderr=follower, timeout=60
        )
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(leader)
        text = out.decode()
        assert proc.returncode == 0 and "Usage: coderunner" in text
        assert "\x1b" not in text, f"escape codes in `coderunner {' '.join(args)} --help`"
        assert max(len(line) for line in text.splitlines()) <= 80, text


def test_cli_errors_speak_cli_not_http(gateway, monkeypatch):
    monkeypatch.setenv("CODERUNNER_URL", gateway.url)
    monkeypatch.setenv("CODERUNNER_TOKEN", gateway.token)
    r = invoke("exec", "-s", "no-such", "-c", "1")
    assert r.exit_code == 66
    assert "`coderunner session ls`" in r.stderr and "/v1/" not in r.stderr
    r = invoke("skills", "show", "no-such")
    assert "`coderunner skills ls`" in r.stderr and "/v1/" not in r.stderr
    r = invoke("exec", "--timeout", "1e9", "-c", "1")
    assert r.exit_code == 65 and r.stderr.startswith("coderunner: --timeout must be") and "field" not in r.stderr


def test_exec_into_a_closed_pipe_ends_quietly(gateway):
    import subprocess

    from tests.cli.conftest import cli_env

    env = cli_env(Path("/tmp"), CODERUNNER_URL=gateway.url, CODERUNNER_TOKEN=gateway.token)
    proc = subprocess.run(
        [
            "bash",
            "-c",
            "coderunner exec -c 'for i in range(200000): print(i)' | head -1; echo \"${PIPESTATUS[0]}\" >&2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout == "0\n"
    code = proc.stderr.splitlines()[-1]
    assert code in ("0", "141") and proc.stderr == code + "\n", proc.stderr


def test_code_for_a_session_runs_in_its_language_without_lang(gateway, monkeypatch):
    """`exec -s S -c CODE` (or code on stdin) runs in S's language: a bash session needs no --lang bash."""
    monkeypatch.setenv("CODERUNNER_URL", gateway.url)
    monkeypatch.setenv("CODERUNNER_TOKEN", gateway.token)
    assert invoke("session", "new", "sh-lang", "--lang", "bash").exit_code == 0
    try:
        r = invoke("exec", "-s", "sh-lang", "-c", "echo $((6 * 7))")
        assert (r.exit_code, r.stdout, r.stderr) == (0, "42\n", "")
        r = invoke("exec", "-s", "sh-lang", "-", input="echo from-stdin\n")
        assert (r.exit_code, r.stdout) == (0, "from-stdin\n")
        r = invoke("exec", "-s", "sh-lang", "--lang", "python", "-c", "print(1)")  # asked for: still refused
        assert r.exit_code == 65 and "runs bash, not python" in r.stderr
    finally:
        invoke("session", "rm", "sh-lang")


def test_the_session_limit_is_said_in_cli_words(gateway_factory, monkeypatch):
    gw = gateway_factory("--max-sessions", "1", "--pool-size", "0")
    monkeypatch.setenv("CODERUNNER_URL", gw.url)
    monkeypatch.setenv("CODERUNNER_TOKEN", gw.token)
    assert invoke("session", "new", "one").exit_code == 0
    r = invoke("session", "new", "two")
    assert r.exit_code == 65
    assert "/v1/" not in r.stderr and "`coderunner session rm NAME`" in r.stderr, r.stderr
