"""The CLI in-process through Typer's CliRunner: parsing, errors, exit codes, config."""

from __future__ import annotations

import json
import os

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
        "ANTHROPIC_API_KEY": "sk-ant-abcdefghijklmnop"}
    assert invoke("config", "set", "WITH SPACE", "x").exit_code == 78
    cfg.write_text("this is not dotenv\n")
    r = invoke("config", "show")
    assert r.exit_code == 78 and "expected KEY=VALUE" in r.stderr


def test_up_refuses_bad_mount_and_missing_env_file(tmp_path):
    r = invoke("up", "--runtime", "local", "--mount", "nocolon")
    assert r.exit_code == 2 and "SRC:DST" in r.stderr
    r = invoke("up", "--runtime", "local", "--env-file", str(tmp_path / "missing.env"))
    assert r.exit_code == 78 and "does not exist" in r.stderr
