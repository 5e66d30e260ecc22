"""Formula/coderunner.rb: Ruby syntax, and its resources in sync with pyproject.toml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
FORMULA = ROOT / "Formula" / "coderunner.rb"
RESOURCE = re.compile(r'resource "([^"]+)" do\s+url "([^"]+)"\s+sha256 "([0-9a-f]+)"\s+end')


def resources() -> dict[str, tuple[str, str, str]]:
    found = {}
    for name, url, sha in RESOURCE.findall(FORMULA.read_text()):
        filename = url.rsplit("/", 1)[1]
        version = re.match(r"^[A-Za-z0-9_.\-]+?-(\d[^-]*?)(?:\.tar\.gz|\.zip|-py3-none-any\.whl)$", filename).group(1)
        found[canonicalize_name(name)] = (version, url, sha)
    return found


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed (scripts/setup installs it)")
def test_formula_parses_as_ruby():
    r = subprocess.run(["ruby", "-c", str(FORMULA)], capture_output=True, text=True)
    assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stderr


def test_formula_has_test_block_and_caveats():
    text = FORMULA.read_text()
    assert "include Language::Python::Virtualenv" in text and "virtualenv_install_with_resources" in text
    assert "#{bin}/coderunner --version" in text and "#{bin}/coderunner --help" in text
    assert "macOS 26" in text and "Apple silicon" in text and "kernel" in text


def test_resources_are_hashed_pypi_files():
    res = resources()
    assert len(res) > 10
    for name, (version, url, sha) in res.items():
        assert url.startswith("https://files.pythonhosted.org/packages/"), name
        assert f"-{version}" in url.rsplit("/", 1)[1], name
        assert len(sha) == 64, name


def test_direct_dependencies_satisfy_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    res = resources()
    for dep in deps:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in res, f"{name} has no resource: run scripts/update-formula"
        assert req.specifier.contains(res[name][0], prereleases=True), (
            f"{name} {res[name][0]} is outside {req.specifier}: run scripts/update-formula"
        )


def test_resources_are_exactly_the_dependency_closure(tmp_path):
    """pip, held to the formula's versions, needs every resource and nothing else."""
    res = resources()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, (version, _, _) in res.items()))
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "-c",
            str(constraints),
            "--report",
            str(report),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"pip cannot resolve with the formula's versions:\n{proc.stderr[-2000:]}"
    resolved = {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    resolved.pop("coderunner")
    assert resolved == {name: version for name, (version, _, _) in res.items()}
