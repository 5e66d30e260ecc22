"""The library's own name: `import coderunner` gives the very client `coderunner_cli` has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_both_names_give_the_same_classes():
    import coderunner
    import coderunner_cli

    assert coderunner.__all__ == coderunner_cli.__all__
    assert coderunner.__version__ == coderunner_cli.__version__
    for name in coderunner_cli.__all__:
        assert getattr(coderunner, name) is getattr(coderunner_cli, name), name
    from coderunner import AsyncCodeRunner, CodeRunner, SessionNotFound, execute

    assert CodeRunner is coderunner_cli.CodeRunner and AsyncCodeRunner is coderunner_cli.AsyncCodeRunner
    assert SessionNotFound is coderunner_cli.SessionNotFound and execute is coderunner_cli.execute


def test_unknown_names_are_attribute_errors():
    import coderunner

    try:
        coderunner.NoSuchThing  # noqa: B018 - the attribute access is the test
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("coderunner.NoSuchThing did not raise")


def test_import_stays_cheap():
    """Like coderunner_cli, the package imports the client only when a name is used."""
    code = "import sys, coderunner; print('coderunner_cli.client' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["False", "False"]
