"""parse_execute: an execute request's body checked once into a frozen ExecuteRequest."""

from __future__ import annotations

import dataclasses
import os

import pytest
from coderunner_gateway.api.execute import parse_execute
from coderunner_gateway.errors import BadRequest, SessionNotFound
from coderunner_gateway.request import ExecuteRequest
from coderunner_gateway.sessions import SessionManager
from coderunner_gateway.settings import Settings
from coderunner_gateway.validation import MAX_ARGV_ENV_BYTES


@pytest.fixture
def ctx(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (workspace / "out").symlink_to(tmp_path / "outside")
    settings = Settings(workspace=str(workspace), runtime_dir=str(tmp_path), default_timeout=30.0, max_timeout=100.0)
    return settings, SessionManager(settings)  # not started: no kernel


def parse(ctx, strict: bool = True, **data) -> ExecuteRequest:
    settings, sessions = ctx
    return parse_execute(data, settings, sessions, strict=strict)


def refused(ctx, error: str, **data) -> str:
    with pytest.raises(BadRequest) as exc:
        parse(ctx, **data)
    assert exc.value.code == error, (data, exc.value.code, exc.value.message)
    return exc.value.message


def test_a_plain_script_request(ctx):
    req = parse(ctx, code="print(1)")
    assert req == ExecuteRequest(code="print(1)", language="python", timeout=30.0)
    assert req.session is None and req.stdin is None and req.argv == () and dict(req.env) == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.code = "other"  # type: ignore[misc]


def test_every_script_field(ctx):
    req = parse(
        ctx,
        code="echo",
        language="bash",
        timeout=5,
        stdin="héllo",
        argv=["a", ""],
        env={"K": "v"},
        filename="run.sh",
        cwd="proj/sub/",
    )
    assert (req.language, req.timeout, req.stdin, req.argv, dict(req.env)) == (
        "bash",
        5.0,
        "héllo".encode(),
        ("a", ""),
        {"K": "v"},
    )
    assert req.filename == "run.sh"
    assert req.cwd == os.path.join(ctx[0].workspace, "proj/sub"), "the unresolved workspace path, normalised"


def test_stdin_b64_gives_any_bytes(ctx):
    assert parse(ctx, code="x", stdin_b64="AP8=").stdin == b"\x00\xff"
    refused(ctx, "invalid_field", code="x", stdin_b64="AP8")
    refused(ctx, "invalid_field", code="x", stdin="a", stdin_b64="YQ==")


def test_code_is_required_and_not_blank(ctx):
    assert "required" in refused(ctx, "invalid_field")
    refused(ctx, "empty_code", code=" \n\t")
    refused(ctx, "invalid_field", code=1)


def test_the_timeout_is_bounded_and_defaults_from_settings(ctx):
    assert parse(ctx, code="x").timeout == 30.0
    assert parse(ctx, code="x", timeout=100).timeout == 100.0
    assert "at most 100" in refused(ctx, "invalid_field", code="x", timeout=101)


def test_cwd_must_be_an_existing_folder_inside_the_workspace(ctx):
    for cwd in ("", "/etc", "../ws", "proj/../..", "proj/\x00"):
        refused(ctx, "invalid_cwd", code="x", cwd=cwd)
    refused(ctx, "invalid_cwd", code="x", cwd="missing")
    refused(ctx, "invalid_cwd", code="x", cwd="out")  # a link out of the workspace


def test_with_a_cwd_the_filename_is_relative_to_it(ctx):
    assert parse(ctx, code="x", cwd="proj", filename="sub/run.py").filename == "sub/run.py"
    for name in ("/abs/run.py", "../run.py", "sub/../../run.py"):
        refused(ctx, "invalid_field", code="x", cwd="proj", filename=name)


def test_argv_and_env_together_are_bounded(ctx):
    chunk = "x" * 99_999  # each string well under one argument's limit; +1 for its NUL
    n = MAX_ARGV_ENV_BYTES // 100_000  # 10: just under the limit together
    parse(ctx, code="x", argv=[chunk] * n)
    refused(ctx, "invalid_field", code="x", argv=[chunk] * n, env={"K": chunk})
    refused(ctx, "invalid_field", code="x", argv=[chunk] * (n + 1))


def test_script_fields_are_refused_with_a_session_before_it_is_looked_up(ctx):
    message = refused(ctx, "invalid_field", code="x", session_id="s1", argv=["a"], cwd="proj")
    assert message.startswith("argv, cwd only apply to scripts")
    with pytest.raises(SessionNotFound):
        parse(ctx, code="x", session_id="s1", argv=[], env={})  # empty script fields pass


def test_unknown_fields_are_refused_unless_not_strict(ctx):
    refused(ctx, "invalid_field", code="x", command="y")
    assert parse(ctx, strict=False, code="x", command="y").code == "x"
