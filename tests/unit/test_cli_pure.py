"""The CLI's pure functions: the config file, --mount, the code `exec` runs, and exit codes."""

from __future__ import annotations

import io
import itertools
import os
import stat

import pytest
import typer

from coderunner_cli import config, paths
from coderunner_cli.client import CodeRunner
from coderunner_cli.commands.exec_ import resolve_code
from coderunner_cli.errors import (
    AuthError,
    CoderunnerError,
    CommandFailed,
    ConfigError,
    GatewayError,
    GatewayUnavailable,
    RuntimeTimeout,
    RuntimeUnavailable,
    SandboxNotRunning,
    SessionNotFound,
    UsageError,
)
from coderunner_cli.runtimes.base import Mount


# -- config -----------------------------------------------------------------------
def test_parse_reads_keys_and_skips_comments():
    text = "# header\n\nexport A=1\n  B = two words  \nC='q # not a comment'\nD=\"x\\ty\" # comment\n"
    assert config.parse(text) == {"A": "1", "B": "two words", "C": "q # not a comment", "D": "x\ty"}


def test_a_later_line_wins():
    assert config.parse("A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize(
    "text, line",
    [("A=1\nB\n", 2), ("A=1\n\n\nB='x\n", 4), ('A="x"y\n', 1), ("9A=1\n", 1), ("A=\x00\n", 1), ("A-B=1\n", 1)],
)
def test_a_bad_line_is_a_config_error_naming_source_and_line(text, line):
    with pytest.raises(ConfigError) as exc:
        config.parse(text, "my.env")
    assert exc.value.message.startswith(f"my.env:{line}: ")
    assert exc.value.exit_code == 78


# every character dumps must treat specially, alone and in pairs
SPECIAL = ["\n", "\r", "\t", '"', "'", "\\", "$", "`", "#", " ", "=", "\a", "\b", "\f", "\v", "é", "\U0001f600", "x"]
VALUES = [
    "",
    " lead and trail ",
    "line1\nline2\n",
    "\\n is not a newline",
    'it\'s "quoted"',
    "$HOME `cmd` $(x)",
    "#not a comment",
    "a\r\nb",
    "''",
    '""',
    "\\",
    *SPECIAL,
    *("".join(p) for p in itertools.product(SPECIAL, repeat=2)),
]


def test_dumps_then_parse_gives_every_value_back():
    for value in VALUES:
        env = {"KEY": value, "NEXT": "after"}
        text = config.dumps(env)
        assert config.parse(text) == env, f"{value!r} written as {text!r}"
        assert text.count("\n") == 3, f"{value!r}: one line per value, a newline in a value is escaped"


def test_any_character_but_nul_round_trips_alone_and_between_others():
    chars = [chr(c) for c in range(1, 0x800)] + ["\u2028", "\u2029", "\ufeff", "\ue000", "\U0001f600", "\U0010ffff"]
    for c in chars:
        for value in (c, f"a{c}b"):
            env = {"KEY": value, "NEXT": "after"}
            assert config.parse(config.dumps(env)) == env, f"{value!r} written as {config.dumps(env)!r}"


def test_values_are_quoted_only_when_needed():
    assert config.quote("sk-abc_123.x/y:z") == "sk-abc_123.x/y:z"
    assert config.quote("two words") == "'two words'"
    assert config.quote("it's") == '"it\'s"'
    assert config.quote("a\nb") == '"a\\nb"'


def test_a_nul_cannot_be_written():
    with pytest.raises(UsageError, match="NUL"):
        config.dumps({"K": "a\x00b"})
    with pytest.raises(UsageError, match="UTF-8"):
        config.dumps({"K": "\ud800"})


def test_save_and_load_round_trip_privately():
    env = {"A": "x y", "B": "line\nbreak", "C": ""}
    path = config.save(env)
    assert path == paths.config_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert config.load() == env


def test_read_file_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.read_file(tmp_path / "missing.env")
    with pytest.raises(ConfigError, match="is a directory"):
        config.read_file(tmp_path)
    (tmp_path / "latin1.env").write_bytes(b"A=\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.read_file(tmp_path / "latin1.env")


def test_keys_and_masks():
    assert config.check_key("_OK9") == "_OK9"
    for bad in ("9A", "A-B", "", "A B", "É"):
        with pytest.raises(ConfigError):
            config.check_key(bad)
    assert config.mask("sk-1234567890ab") == "sk-****ab"
    assert config.mask("short") == "*****"


# -- Mount.parse ---------------------------------------------------------------
def test_mount_parses_src_dst_and_ro(tmp_path):
    assert Mount.parse(f"{tmp_path}:/data") == Mount(str(tmp_path.resolve()), "/data", False)
    assert Mount.parse(f"{tmp_path}:/data:ro") == Mount(str(tmp_path.resolve()), "/data", True)
    assert Mount.parse(f"{tmp_path}:/data:rw").read_only is False


def test_mount_source_is_resolved(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    assert Mount.parse("link:/d").source == str((tmp_path / "real").resolve())
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Mount.parse("~/real:/d").source == str((tmp_path / "real").resolve())


@pytest.mark.parametrize(
    "text, says",
    [
        ("{d}", "expected SRC:DST"),
        ("{d}:", "expected SRC:DST"),
        (":/x", "expected SRC:DST"),
        ("{d}:/x:rx", "expected SRC:DST"),
        ("{d}:/x:ro:y", "expected SRC:DST"),
        ("{d}:relative", "absolute path"),
        ("{d}/missing:/x", "does not exist"),
    ],
)
def test_bad_mounts_are_usage_errors(tmp_path, text, says):
    with pytest.raises(UsageError) as exc:
        Mount.parse(text.format(d=tmp_path))
    assert says in exc.value.message and exc.value.exit_code == 2


# -- resolve_code ------------------------------------------------------------------
class FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool = False) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_inline_code_wins_and_defaults_to_python():
    assert resolve_code("ignored.sh", "print(1)", None) == ("print(1)", "python", None, False)
    assert resolve_code(None, "echo", "bash") == ("echo", "bash", None, False)


def test_stdin_is_read_when_it_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdin", FakeStdin("print(2)\n"))
    assert resolve_code("-", None, None) == ("print(2)\n", "python", None, True)
    monkeypatch.setattr("sys.stdin", FakeStdin("echo", tty=True))
    with pytest.raises(UsageError, match="stdin is a terminal"):
        resolve_code("-", None, None)


def test_nothing_to_run_is_a_usage_error():
    with pytest.raises(UsageError, match="give a FILE"):
        resolve_code(None, None, None)


@pytest.mark.parametrize(
    "name, first_line, lang",
    [
        ("a.py", "x = 1", "python"),
        ("a.PY", "x = 1", "python"),
        ("a.sh", "echo", "bash"),
        ("a.bash", "echo", "bash"),
        ("tool", "#!/usr/bin/env python3", "python"),
        ("tool", "#!/usr/bin/env -S python3.12 -u", "python"),
        ("tool", "#!/usr/bin/python", "python"),
        ("tool", "#!/bin/sh", "bash"),
        ("tool", "#!/usr/bin/env bash", "bash"),
        ("tool.sh", "#!/usr/bin/env python3", "bash"),
    ],
)
def test_a_file_language_comes_from_extension_then_shebang(tmp_path, name, first_line, lang):
    path = tmp_path / name
    path.write_text(first_line + "\nrest\n", encoding="utf-8")
    assert resolve_code(str(path), None, None) == (first_line + "\nrest\n", lang, name, False)


def test_lang_overrides_and_is_needed_when_nothing_tells(tmp_path):
    path = tmp_path / "tool"
    path.write_text("#!/usr/bin/env ruby\nputs 1\n", encoding="utf-8")
    with pytest.raises(UsageError, match="--lang"):
        resolve_code(str(path), None, None)
    assert resolve_code(str(path), None, "bash")[1] == "bash"


def test_unreadable_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        resolve_code(str(tmp_path / "missing.py"), None, None)
    with pytest.raises(UsageError, match="is a directory"):
        resolve_code(str(tmp_path), None, None)
    (tmp_path / "bin.py").write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8"):
        resolve_code(str(tmp_path / "bin.py"), None, None)


# -- exit codes --------------------------------------------------------------------
ERRORS = [
    (UsageError("x"), 2),
    (SandboxNotRunning(), 3),
    (GatewayError("x", status=400, code="invalid_field"), 65),
    (SessionNotFound("x"), 66),
    (RuntimeUnavailable("x"), 69),
    (GatewayUnavailable("x"), 69),
    (CommandFailed(["docker", "pull", "img"], 1, "boom"), 71),
    (RuntimeTimeout("x"), 75),
    (AuthError("x"), 77),
    (ConfigError("x"), 78),
    (CoderunnerError("x"), 1),
]


@pytest.mark.parametrize("err, code", ERRORS, ids=lambda e: type(e).__name__ if isinstance(e, Exception) else str(e))
def test_every_error_exits_with_the_readme_code_through_the_command_wrapper(err, code, capsys):
    from coderunner_cli.app import _user_errors

    def command():
        raise err

    with pytest.raises(typer.Exit) as exc:
        _user_errors(command)()
    assert exc.value.exit_code == code == err.exit_code
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"coderunner: {err.message}\n"


def test_subclasses_are_caught_as_their_parents():
    assert issubclass(RuntimeTimeout, RuntimeUnavailable)
    assert all(issubclass(c, GatewayError) for c in (AuthError, SessionNotFound, GatewayUnavailable))


def test_command_failed_says_the_command_and_its_last_error_line():
    err = CommandFailed(["docker", "run", "--rm", "img", "x"], 125, "warning\nError: no such image\n", "build it")
    assert err.message == "`docker run --rm ...` failed (exit 125): Error: no such image; build it"
    assert CommandFailed(["true"], 1, "").message == "`true` failed (exit 1): no error output"


def test_sandbox_not_running_names_a_named_sandbox():
    assert "coderunner up`" in SandboxNotRunning.named().message
    assert "`coderunner up --name b`" in SandboxNotRunning.named("b").message


@pytest.mark.parametrize(
    "status, body, kind",
    [
        (401, b'{"error": {"code": "unauthorized", "message": "wrong token"}}', AuthError),
        (404, b'{"error": {"code": "session_not_found", "message": "no session"}}', SessionNotFound),
        (404, b'{"error": {"code": "not_found", "message": "no route"}}', GatewayError),
        (400, b'{"error": {"code": "invalid_field", "message": "bad"}}', GatewayError),
        (502, b"<html>bad gateway</html>", GatewayError),
    ],
)
def test_gateway_answers_map_to_the_error_tree(status, body, kind):
    err = CodeRunner("http://127.0.0.1:9", "t")._error(status, body)
    assert type(err) is kind and err.status == status
    if status == 502:
        assert err.code == "" and "bad gateway" in err.message


def test_the_image_context_is_found_from_the_checkout_the_cli_was_installed_from(monkeypatch, tmp_path):
    """scripts/setup installs the CLI as users get it (not editable): `up` still finds
    container_image/ through the install's PEP 610 record of its source folder."""
    import json
    from importlib import metadata
    from pathlib import Path

    from coderunner_cli import sandbox

    monkeypatch.delenv("CODERUNNER_IMAGE_CONTEXT", raising=False)
    root = Path(__file__).resolve().parents[2]
    assert sandbox.image_context() == root / "container_image"  # this checkout, however installed

    checkout = tmp_path / "my checkout"  # a space: the URL is percent-encoded
    (checkout / "container_image").mkdir(parents=True)
    (checkout / "container_image" / "Dockerfile").write_text("FROM scratch\n")
    record = {"url": checkout.as_uri(), "dir_info": {}}

    class Dist:
        def read_text(self, name):
            return json.dumps(record) if name == "direct_url.json" else None

    monkeypatch.setattr(metadata, "distribution", lambda name: Dist())
    monkeypatch.setattr(sandbox, "__file__", str(tmp_path / "site-packages" / "coderunner_cli" / "sandbox.py"))
    assert sandbox.image_context() == checkout / "container_image"
    record["url"] = "https://example.com/coderunner.tar.gz"  # installed from an archive: no checkout
    assert sandbox.image_context() is None
    monkeypatch.setenv("CODERUNNER_IMAGE_CONTEXT", str(tmp_path))
    assert sandbox.image_context() == tmp_path
