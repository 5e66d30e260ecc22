"""The gateway's settings: its command line, the environment code gets, and --env-file errors."""

from __future__ import annotations

import pytest
from coderunner_gateway.__main__ import _parser
from coderunner_gateway.settings import PASSED_ENV, Settings, read_env_file


def test_defaults(monkeypatch, tmp_path):
    for key in ("CODERUNNER_HOST", "CODERUNNER_PORT", "CODERUNNER_WORKSPACE", "CODERUNNER_ISOLATION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    a = _parser().parse_args([])
    assert (a.host, a.port, a.workspace, a.isolation) == ("127.0.0.1", 8222, str(tmp_path), "auto")
    assert (a.pool_size, a.script_pool, a.max_sessions, a.session_ttl) == (2, 2, 32, 3600.0)
    assert (a.max_output_bytes, a.max_request_bytes) == (16 << 20, 32 << 20)
    assert a.default_timeout is None and a.uds is None and a.token_file is None
    assert a.env_file == [] and a.share == [] and a.pass_env == []


def test_the_environment_gives_defaults_and_flags_win(monkeypatch):
    monkeypatch.setenv("CODERUNNER_HOST", "0.0.0.0")
    monkeypatch.setenv("CODERUNNER_PORT", "9000")
    monkeypatch.setenv("CODERUNNER_WORKSPACE", "/ws")
    a = _parser().parse_args([])
    assert (a.host, a.port, a.workspace) == ("0.0.0.0", 9000, "/ws")
    a = _parser().parse_args(["--port", "0", "--host", "::1", "--workspace", "/other"])
    assert (a.host, a.port, a.workspace) == ("::1", 0, "/other")


def test_repeatable_flags_accumulate():
    a = _parser().parse_args(["--env-file", "a", "--env-file", "b", "--share", "/x", "--pass-env", "K"])
    assert a.env_file == ["a", "b"] and a.share == ["/x"] and a.pass_env == ["K"]


def test_bad_values_are_usage_errors(capsys):
    for argv in (["--isolation", "chroot"], ["--port", "eighty"], ["--pool-size", "1.5"]):
        with pytest.raises(SystemExit) as exc:
            _parser().parse_args(argv)
        assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_there_is_no_token_flag_on_argv():
    with pytest.raises(SystemExit):
        _parser().parse_args(["--token", "secret"])


def test_code_gets_an_allowlist_of_the_gateway_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CODERUNNER_TOKEN", "secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    s = Settings(workspace="/ws", runtime_dir=str(tmp_path), extra_env={"API_KEY": "k", "TZ": "Europe/Paris"})
    env = s.child_env({"ARG": "1"})
    assert "CODERUNNER_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    ours = {"USER", "LOGNAME", "SHELL", "PYTHONUNBUFFERED", "MPLBACKEND", "CODERUNNER_WORKSPACE", "LANG", "PATH"}
    assert set(env) <= set(PASSED_ENV) | ours | {"LC_ALL", "API_KEY", "ARG"}
    assert env["LC_ALL"] == "C.UTF-8", "LC_* pass"
    assert env["TZ"] == "Europe/Paris", "--env-file entries win over the gateway's own"
    assert (env["API_KEY"], env["ARG"], env["CODERUNNER_WORKSPACE"], env["USER"]) == ("k", "1", "/ws", "sandbox")
    assert env["MPLBACKEND"] == "Agg"
    assert "MPLBACKEND" not in s.child_env(kernel=True), "kernels pick their own backend"


def test_code_gets_a_path_and_lang_even_from_an_empty_environment(monkeypatch, tmp_path):
    for key in PASSED_ENV:
        monkeypatch.delenv(key, raising=False)
    env = Settings(workspace="/ws", runtime_dir=str(tmp_path)).child_env()
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin" and env["LANG"] == "C.UTF-8"


@pytest.mark.parametrize(
    "text, line, says",
    [
        ("A=1\nnot a pair\n", 2, "expected KEY=VALUE"),
        ("A=1\n\n# c\nB='open\n", 4, "quote is not closed"),
        ('A="x" y\n', 1, "only a # comment"),
        ("A=a\x00b\n", 1, "NUL"),
        ("1A=x\n", 1, "expected KEY=VALUE"),
    ],
)
def test_env_file_errors_name_the_file_and_line(tmp_path, text, line, says):
    path = tmp_path / "sandbox.env"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        read_env_file(str(path))
    assert str(exc.value).startswith(f"{path}:{line}: ") and says in str(exc.value)
