"""The unit layer: in-process, no subprocess, no sandbox, no kernel; the whole of it runs in seconds.

Every CLI path points into a temp dir, as the CLI suites' ``isolated_paths`` does.
"""

from __future__ import annotations

import os

import pytest

from coderunner_cli import paths


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("CODERUNNER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CODERUNNER_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("CODERUNNER_CONFIG", str(tmp_path / "coderunner.config"))
    monkeypatch.setenv("CODERUNNER_OUTPUTS", str(tmp_path / "outputs"))
    paths.use_sandbox(None)
    yield
    paths.use_sandbox(None)
