"""`coderunner exec -w DIR script.py`: the script runs with its folder, as `cd DIR && python script.py` would."""

from __future__ import annotations

import os
import subprocess

from tests.cli.conftest import cr

MAIN = """\
import os, sys
import helper
print(helper.VALUE, open("data.csv").read().strip(), sys.argv[1:])
print(os.path.basename(os.getcwd()), __file__)
print(sorted(n for n in os.listdir(".") if n != "__pycache__"))  # python makes its own
"""


def _project(root):
    proj = root / "proj"
    (proj / ".git").mkdir(parents=True)
    (proj / ".git" / "HEAD").write_text("ref\n")
    (proj / "__pycache__").mkdir()
    (proj / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"\0")
    (proj / "node_modules" / "x").mkdir(parents=True)
    (proj / "node_modules" / "x" / "i.js").write_text("1\n")
    (proj / "main.py").write_text(MAIN)
    (proj / "helper.py").write_text("VALUE = 'helper'\n")
    (proj / "data.csv").write_text("a,b\n")
    with open(proj / "big.bin", "wb") as f:  # sparse: over the per-file limit, skipped and said
        f.truncate(11 * 1024 * 1024)
    return proj


def test_w_uploads_the_folder_and_runs_the_script_in_it(sandbox, tmp_path):
    proj = _project(tmp_path)
    r = cr(sandbox, "exec", "-w", str(proj), str(proj / "main.py"), "arg", check=0)
    lines = r.stdout.splitlines()
    assert lines[0] == "helper a,b ['arg']"
    assert lines[1] == "proj main.py"
    assert lines[2] == str(sorted(["data.csv", "helper.py", "main.py"]))
    assert "big.bin" in r.stderr and "skipped" in r.stderr
    # the long form, from inside the folder, and a traceback naming the script as the user does
    (proj / "fail.py").write_text("import helper\n\nraise SystemExit(helper.nope)\n")
    r = subprocess.run(
        ["coderunner", "exec", "--sync", ".", "fail.py"],
        cwd=proj,
        env=sandbox,
        text=True,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 1
    assert 'File "fail.py", line 3, in <module>' in r.stderr, r.stderr


def test_w_refuses_a_folder_too_big_and_a_script_outside_it(sandbox, tmp_path):
    proj = _project(tmp_path)
    for i in range(12):  # sparse files under the per-file limit, over the total
        with open(proj / f"part{i}.bin", "wb") as f:
            f.truncate(9 * 1024 * 1024)
    r = cr(sandbox, "exec", "-w", str(proj), str(proj / "main.py"), check=2)
    assert len(r.stderr.strip().splitlines()) == 1 and "-w" in r.stderr and "MiB" in r.stderr
    other = tmp_path / "other.py"
    other.write_text("print(1)\n")
    r = cr(sandbox, "exec", "-w", str(proj), str(other), check=2)
    assert "not inside" in r.stderr
    r = cr(sandbox, "exec", "-w", str(proj), "--session", "s", "-c", "1", check=2)
    assert r.stderr.count("\n") == 1


def test_hints_name_w_when_a_sibling_module_or_file_is_missing(sandbox, tmp_path):
    proj = _project(tmp_path)
    r = cr(sandbox, "exec", str(proj / "main.py"), check=1)
    assert "ModuleNotFoundError" in r.stderr
    hint = r.stderr.strip().splitlines()[-1]
    assert hint.startswith("coderunner: ") and "helper" in hint and f"-w {proj}" in hint
    (proj / "read.py").write_text("open('data.csv')\n")
    r = cr(sandbox, "exec", str(proj / "read.py"), check=1)
    hint = r.stderr.strip().splitlines()[-1]
    assert hint.startswith("coderunner: ") and "data.csv" in hint and "-w" in hint
    # no hint for what does not exist on this machine either
    (proj / "miss.py").write_text("import nothere_at_all\n")
    r = cr(sandbox, "exec", str(proj / "miss.py"), check=1)
    assert "-w" not in r.stderr
    assert os.path.exists(proj / "helper.py")
