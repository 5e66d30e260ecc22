"""The unit layer: in-process, no subprocess, no sandbox, no kernel; the whole of it runs in seconds.

Every CLI path points into a temp dir, as the CLI suites' ``isolated_paths`` does.
When the whole tree is collected (``scripts/test``), this layer runs first: a broken
pure function fails in seconds, before the process-level suites start gateways and
sandboxes. (pytest merges ``testpaths = tests/unit tests`` into tree order, where
``unit`` sorts last, hence the hook.)
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from coderunner_cli import paths

_homes = itertools.count()


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path_factory, monkeypatch):
    """A fresh home per test (one mkdir: cheaper than tmp_path, which most tests never use)."""
    home = tmp_path_factory.getbasetemp() / f"home{next(_homes)}"
    home.mkdir()
    for key in [k for k in os.environ if k.startswith("CODERUNNER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CODERUNNER_HOME", str(home / "state"))
    monkeypatch.setenv("CODERUNNER_CONFIG", str(home / "coderunner.config"))
    monkeypatch.setenv("CODERUNNER_OUTPUTS", str(home / "outputs"))
    paths.use_sandbox(None)
    yield home
    paths.use_sandbox(None)


UNIT = Path(__file__).parent


def pytest_collection_modifyitems(session, config, items):
    """Move this layer's tests to the front, each module's tests kept together and in order."""
    unit = [item for item in items if UNIT in item.path.parents]
    if unit and len(unit) < len(items):
        items[:] = unit + [item for item in items if UNIT not in item.path.parents]
