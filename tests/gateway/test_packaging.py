"""The coderunner-gateway distribution carries the built-in skills and the programs it sends to
kernels, interpreters and pages, and leaves no build/ behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "container_image"
SKILL_FILES = (
    "pdf-text-replace/SKILL.md",
    "pdf-text-replace/scripts/replace_text.py",
    "image-crop-rotate/SKILL.md",
    "image-crop-rotate/scripts/crop_rotate.py",
)
PROGRAMS = (
    "kernel_init.py",
    "kernel_init_after.py",
    "script_bootstrap.py",
    "script_waiter.py",
    "text.js",
    "markdown.js",
    "html.js",
    "links.js",
)


@pytest.mark.timeout(600)
def test_a_wheel_of_the_gateway_holds_the_public_skills_and_programs_and_the_checkout_stays_clean(tmp_path):
    # a copy, so that whatever the build leaves is seen here and not in the checkout
    src = tmp_path / "container_image"
    shutil.copytree(
        SOURCE, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "lib", "bdist.*", "certs", "wheels")
    )

    def inputs() -> list[Path]:  # what build/ holds besides setuptools' scratch (git ignores that)
        return sorted(p.relative_to(src) for p in (src / "build").rglob("*") if "setuptools" not in p.parts)

    before = inputs()
    out = tmp_path / "out"
    # twice: the second build meets what the first left behind
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), f".{os.sep}"],
            cwd=src,
            check=True,
            capture_output=True,
            timeout=540,
        )
    (wheel,) = out.glob("coderunner_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in SKILL_FILES:
        assert f"coderunner_gateway/public_skills/{rel}" in names, sorted(names)
    for name in PROGRAMS:
        assert f"coderunner_gateway/programs/{name}" in names, sorted(names)
    package = SOURCE / "coderunner_gateway"
    for module in package.rglob("*.py"):  # every module, subpackages too (api/)
        rel = module.relative_to(package.parent).as_posix()
        if "public_skills" not in rel:
            assert rel in names, sorted(names)
    # installed from the wheel alone (not this checkout), the gateway reads its programs
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import coderunner_gateway.programs as p; "
        "assert p.__file__.startswith(sys.argv[1]), p.__file__; "
        "print(len([n for n in sys.argv[2:] if p.load(n).strip()]))"
    )
    loaded = subprocess.run(  # -S: no site-packages, so not the install of this checkout
        [sys.executable, "-S", "-c", probe, str(site), *PROGRAMS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == str(len(PROGRAMS)), loaded.stderr
    assert inputs() == before, "the build left files in build/"


def test_the_gateway_finds_its_public_skills_without_configuration(monkeypatch):
    from coderunner_gateway.skills import default_public_dir

    monkeypatch.delenv("CODERUNNER_SKILLS_DIR", raising=False)
    here = default_public_dir()
    assert here is not None
    for rel in SKILL_FILES:
        assert (here / rel).is_file()
