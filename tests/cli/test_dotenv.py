"""One dotenv contract for the CLI (coderunner_cli.config) and the gateway (read_env_file),
checked by both against the same vectors, and `config set` that round-trips any value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coderunner_gateway.settings import read_env_file
from typer.testing import CliRunner

from coderunner_cli import config
from coderunner_cli.app import app
from coderunner_cli.errors import ConfigError

VECTORS = json.loads((Path(__file__).parent.parent / "fixtures" / "dotenv-vectors.json").read_text(encoding="utf-8"))


def cli_reads(text: str) -> dict[str, str] | None:
    try:
        return config.parse(text)
    except ConfigError:
        return None


def gateway_reads(text: str, tmp_path: Path) -> dict[str, str] | None:
    path = tmp_path / "sandbox.env"
    path.write_bytes(text.encode("utf-8"))
    try:
        return read_env_file(str(path))
    except ValueError:
        return None


@pytest.mark.parametrize("vector", VECTORS["parse"], ids=lambda v: repr(v["text"])[:40])
def test_both_readers_follow_the_vectors(vector, tmp_path):
    assert cli_reads(vector["text"]) == vector["env"]
    assert gateway_reads(vector["text"], tmp_path) == vector["env"]


@pytest.mark.parametrize("value", VECTORS["roundtrip"], ids=repr)
def test_written_values_read_back_unchanged_by_both(value, tmp_path):
    text = config.dumps({"KEY": value, "NEXT": "after"})
    expected = {"KEY": value, "NEXT": "after"}
    assert cli_reads(text) == expected
    assert gateway_reads(text, tmp_path) == expected
    path = tmp_path / "coderunner.config"
    path.write_bytes(text.encode("utf-8"))
    assert config.read_file(path) == expected


def test_config_set_round_trips_through_the_cli(tmp_path):
    runner = CliRunner()
    for value in VECTORS["roundtrip"]:
        r = runner.invoke(app, ["config", "set", "KEY", value])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["config", "show", "--json", "--reveal"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == {"KEY": value}, "no second variable, nothing lost"
    for value in VECTORS["refuse"]:
        r = runner.invoke(app, ["config", "set", "KEY", value])
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "NUL" in r.stderr


def test_a_directory_as_config_or_env_file_is_one_line_and_78(tmp_path, monkeypatch):
    runner = CliRunner()
    folder = tmp_path / "folder"
    folder.mkdir()
    r = runner.invoke(app, ["up", "--runtime", "local", "--env-file", str(folder)])
    assert r.exit_code == 78 and r.stderr == f"coderunner: {folder} is a directory, not a KEY=VALUE file\n"
    monkeypatch.setenv("CODERUNNER_CONFIG", str(folder))
    r = runner.invoke(app, ["config", "show"])
    assert r.exit_code == 78 and r.stderr == f"coderunner: {folder} is a directory, not a KEY=VALUE file\n"
