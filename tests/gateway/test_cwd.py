"""A script's `cwd`: a folder of the workspace it starts in, as `cd DIR && python main.py` would."""

from __future__ import annotations

import os

import pytest

MAIN = """\
import os, sys
import helper
print(helper.VALUE, open("data.csv").read().strip())
print(os.getcwd())
print(__file__, sys.argv)
raise ValueError("boom")
"""


@pytest.fixture
def project(gateway, request):
    root = gateway.workspace / f"proj-{request.node.name[:40]}"
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "helper.py").write_text("VALUE = 'from helper'\n")
    (root / "data.csv").write_text("a,b\n")
    (root / "sub" / "tool.py").write_text("print('tool')\n")
    return root


@pytest.mark.parametrize("env", [{}, {"PYTHONHASHSEED": "0"}], ids=["warm", "cold"])
def test_a_script_runs_in_its_folder_with_its_siblings(gateway, project, env):
    r = gateway.execute(MAIN, cwd=project.name, filename="main.py", argv=["x"], env=env)
    lines = r["stdout"].splitlines()
    assert lines[0] == "from helper a,b"
    assert lines[1] == str(project.resolve())
    assert lines[2] == "main.py ['main.py', 'x']"
    assert r["exit_code"] == 1
    assert 'File "main.py", line 6, in <module>' in r["stderr"]
    assert 'raise ValueError("boom")' in r["stderr"]


def test_a_script_in_a_subfolder_imports_from_its_own_folder(gateway, project):
    code = "import os, tool\nprint(os.getcwd(), __file__)\n"
    r = gateway.execute(code, cwd=project.name, filename="sub/run.py")
    assert r["stdout"] == f"tool\n{project.resolve()} sub/run.py\n", r["stderr"]


def test_bash_starts_in_the_folder(gateway, project):
    r = gateway.execute('pwd; cat data.csv; echo "$1"', language="bash", cwd=project.name, argv=["arg"])
    assert r["stdout"] == f"{project.resolve()}\na,b\narg\n", r["stderr"]


def test_cwd_outside_the_workspace_or_missing_is_400(gateway, project, tmp_path):
    os.symlink(tmp_path, project / "out")
    for cwd in ("../", "/etc", "a/../../x", "no-such-dir", f"{project.name}/data.csv", f"{project.name}/out", ""):
        r = gateway.client().post("/v1/execute", json={"code": "print(1)", "cwd": cwd})
        assert r.status_code == 400, (cwd, r.text)
        assert r.json()["error"]["code"] == "invalid_cwd", (cwd, r.text)


def test_cwd_is_for_scripts_only(gateway, project):
    sid = gateway.new_session()
    r = gateway.client().post("/v1/execute", json={"code": "1", "session_id": sid, "cwd": project.name})
    assert r.status_code == 400 and "cwd" in r.json()["error"]["message"]
