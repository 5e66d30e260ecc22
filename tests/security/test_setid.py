"""`--isolation setid` on this machine, without a container: how a root gateway drops code to
the code's uid, and an attack on the moment it does.

The container suites (`test_container.py`) attack the image's gateway through docker and
podman; these run the same jail and a real root gateway on the host, so the drop itself can be
watched: a probe run in the gateway's fork, just before its exec, reports who the fork is.
Root only (a setid gateway must be root; `scripts/test-as-user` runs the bwrap suites).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from coderunner_gateway.jail import JailConfig, SetidJail, drop_argv

from tests.conftest import start_gateway, wait_warm

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setid needs a root gateway")

CODE_UID = 1000

STATUS = (
    "import json, os\n"
    "st = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
    "old = os.umask(0)\n"
    "print(json.dumps({k: st[k].split() for k in ('Uid', 'Gid', 'Groups', 'NoNewPrivs', 'CapInh', 'CapPrm', 'CapEff', 'CapAmb')}"
    " | {'umask': oct(old)}))\n"
)


def jail(tmp: Path) -> SetidJail:
    (tmp / "run").mkdir()
    (tmp / "ws").mkdir()
    return SetidJail(
        JailConfig(mode="setid", runtime_dir=str(tmp / "run"), workspace=str(tmp / "ws"), code_uid=CODE_UID)
    )


def spawn(j: SetidJail, argv: list[str], **extra: object) -> subprocess.CompletedProcess[str]:
    cell = j.open_cell("t")
    try:
        return subprocess.run(
            j.command(cell, argv),
            **j.popen_kwargs(cell),  # type: ignore[arg-type]
            **extra,  # type: ignore[arg-type]
            cwd="/",
            env=j.env(cell, {"PATH": os.environ["PATH"]}),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        j.close_cell(cell)


def test_the_gateway_s_fork_is_root_until_its_exec(tmp_path: Path) -> None:
    """A fork of the gateway already at the code's uid, not yet exec'd, is a copy of the gateway
    that code may signal: SIGSTOP it and Popen waits on it for good (the gateway stops
    answering). Run in that fork right before its exec, the probe must see root; on the code
    that dropped in the fork (Popen user=/group=) it saw 1000."""
    j = jail(tmp_path)
    r, w = os.pipe()
    cell = j.open_cell("t")
    kwargs = j.popen_kwargs(cell)
    inner = kwargs.pop("preexec_fn", None)

    def probe() -> None:  # runs in the fork, after everything Popen does there, before exec
        if inner is not None:
            inner()
        os.write(w, f"{os.getuid()} {os.geteuid()} {os.getgid()}".encode())

    try:
        subprocess.run(
            j.command(cell, ["/bin/true"]), **kwargs, preexec_fn=probe, pass_fds=(w,), timeout=30, check=True
        )
    finally:
        os.close(w)
        j.close_cell(cell)
    seen = os.read(r, 100).decode()
    os.close(r)
    assert seen == "0 0 0", f"the gateway's fork ran as uid/euid/gid {seen} before its exec"


@pytest.mark.parametrize("how", ["setpriv", "python"])
def test_code_runs_as_the_code_uid_with_nothing_else(tmp_path: Path, how: str) -> None:
    """After the drop (setpriv, or the Python fallback where setpriv is missing): the code's
    uid, the cell's own gid, no other groups, no capabilities, no-new-privileges, umask 022."""
    j = jail(tmp_path)
    if how == "python":
        j.setpriv = None
    cell = j.open_cell("t")
    j.close_cell(cell)
    # the system's Python: the code's uid may not reach the venv's (here, under root's 0700 home)
    out = spawn(j, ["/usr/bin/python3", "-S", "-c", STATUS])
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["Uid"] == [str(CODE_UID)] * 4
    gid = st["Gid"][0]
    assert int(gid) > 200000 and st["Gid"] == [gid] * 4  # a cell group, not the code's 1000
    assert st["Groups"] == []
    assert st["NoNewPrivs"] == ["1"]
    assert st["CapInh"] == st["CapPrm"] == st["CapEff"] == st["CapAmb"] == ["0000000000000000"]
    assert st["umask"] == "0o22"


def test_drop_argv_needs_no_shell() -> None:
    """Both forms run the program given after them, as argv, never through a shell."""
    assert drop_argv(7, 8, "/usr/bin/setpriv")[-1] == "--"
    assert drop_argv(7, 8, None)[-2:] == ["7", "8"]


def test_code_that_stops_every_new_process_does_not_stop_the_gateway(tmp_path: Path) -> None:
    """The attack itself, on a real root gateway: a session's code SIGSTOPs, as fast as it can,
    every process of its uid that says coderunner_gateway, while scripts and new sessions start
    (each a fork of the gateway). Every request must still be answered."""
    gw = start_gateway(tmp_path, "--isolation", "setid", "--code-uid", str(CODE_UID), "--pool-size", "1")
    attack = (
        "import os, signal, time\n"
        "me, hits, end = os.getpid(), 0, time.monotonic() + 30\n"
        "while time.monotonic() < end and not os.path.exists('stop'):\n"
        "    for p in os.listdir('/proc'):\n"
        "        if not p.isdigit() or int(p) == me: continue\n"
        "        try:\n"
        "            if b'coderunner_gateway' in open(f'/proc/{p}/cmdline', 'rb').read():\n"
        "                os.kill(int(p), signal.SIGSTOP); hits += 1\n"
        "        except OSError: pass\n"
        "print('hits', hits)\n"
    )
    try:
        wait_warm(gw)
        sid = gw.new_session()
        attacked: dict[str, httpx.Response] = {}
        attacker = threading.Thread(
            target=lambda: attacked.update(
                r=gw.client(timeout=60).post("/v1/execute", json={"session_id": sid, "code": attack, "timeout": 40})
            )
        )
        attacker.start()
        time.sleep(1)
        c = gw.client(timeout=20)
        for i in range(12):
            out = c.post("/v1/execute", json={"code": f"print({i})", "timeout": 15})
            assert out.status_code == 200 and out.json()["stdout"] == f"{i}\n", out.text
            new = gw.new_session()
            assert c.post("/v1/execute", json={"session_id": new, "code": "print(2)"}).json()["stdout"] == "2\n"
            assert c.delete(f"/v1/sessions/{new}").status_code in (200, 204)
        (gw.workspace / "stop").touch()
        attacker.join(60)
        assert attacked["r"].status_code == 200 and attacked["r"].json()["stdout"].startswith("hits "), attacked[
            "r"
        ].text
        assert c.get("/health").status_code == 200
    finally:
        gw.stop()
