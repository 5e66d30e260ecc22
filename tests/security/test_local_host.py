"""Host from sandbox, on the `local` runtime: attacks from code run with `coderunner exec`
(and `coderunner shell`), each asserting the specific way it now fails."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, cr, needs_bwrap
from tests.conftest import descendants

pytestmark = needs_bwrap
HOST_SECRET = f"host-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """A local sandbox started from a shell that holds secrets in its environment, with
    `PYTHONPATH=:` (an empty entry: the current directory) and its home as the current
    directory, which holds credentials."""
    home = tmp_path_factory.mktemp("host")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(f"aws_secret_access_key = {HOST_SECRET}\n")
    env = cli_env(home, HOST_API_KEY=HOST_SECRET, PYTHONPATH=":", HOME=str(home))
    up = subprocess.run(
        ["coderunner", "up", "--runtime", "local"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert up.returncode == 0, up.stderr
    env["_HOME"] = str(home)
    yield env
    cr(env, "down", "--remove")


def sandbox_pids(env: dict[str, str]) -> list[int]:
    sup = int((Path(env["CODERUNNER_HOME"]) / "coderunner.pid").read_text())
    return [sup, *descendants(sup)]


def test_no_process_of_the_sandbox_holds_the_callers_environment(box):
    # the host side: bwrap's own process kept the CLI's environment before (pid 1 inside)
    cr(box, "exec", "-c", "print(1)", check=0)
    leaked = []
    for pid in sandbox_pids(box)[1:]:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if HOST_SECRET.encode() in f.read():
                    leaked.append(pid)
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
    assert leaked == []
    # and the code's side: everything it can read under /proc
    code = (
        "import glob\nhits = []\nfor p in glob.glob('/proc/*/environ'):\n    try:\n"
        f"        hits += [p] if {HOST_SECRET!r}.encode() in open(p, 'rb').read() else []\n"
        "    except OSError:\n        pass\nprint(hits)"
    )
    assert cr(box, "exec", "-c", code, check=0).stdout == "[]\n"


def test_an_empty_pythonpath_entry_does_not_expose_the_home(box):
    r = cr(
        box,
        "exec",
        "-c",
        f"import os\nprint(os.path.exists({box['_HOME']!r}))\nopen({box['_HOME'] + '/.aws/credentials'!r})",
        check=1,
    )
    assert r.stdout == "False\n"
    assert "FileNotFoundError" in r.stderr and HOST_SECRET not in r.stdout + r.stderr


def test_etc_shows_the_allowlisted_entries_only_read_only_and_as_the_host_has_them(box):
    """A cell's /etc is one read-only copy of the host's allowlisted entries (etc_view.py):
    nothing else of the host's (machine-id, ssh, shadow...) and nothing writable."""
    from coderunner_gateway.jail import ETC_FILES

    from coderunner_cli.runtimes._bwrap import ETC_FILES as SANDBOX_ETC

    code = (
        "import errno, hashlib, json, os\n"
        "def digest(p):\n    return hashlib.sha256(open(p, 'rb').read()).hexdigest() if os.path.isfile(p) else None\n"
        "try:\n    open('/etc/passwd', 'a')\n    w = 'OK'\nexcept OSError as e:\n    w = errno.errorcode[e.errno]\n"
        "print(json.dumps({'top': sorted(os.listdir('/etc')), 'write': w,"
        " 'files': {n: digest('/etc/' + n) for n in ('passwd', 'hosts', 'resolv.conf', 'ssl/certs/ca-certificates.crt')},"
        " 'links': sorted(os.listdir('/etc/ssl/certs'))[:5] if os.path.isdir('/etc/ssl/certs') else None}))"
    )
    import hashlib
    import json

    seen = json.loads(cr(box, "exec", "-c", code, check=0).stdout)
    # the cell's allowlist, of what the sandbox around the gateway has (its own allowlist)
    allowed = {n.split("/")[0] for n in ETC_FILES if os.path.exists(f"/etc/{n}")}
    in_both = {n.split("/")[0] for n in ETC_FILES if os.path.exists(f"/etc/{n}") and n in SANDBOX_ETC}
    assert in_both <= set(seen["top"]) <= allowed, (set(seen["top"]), in_both, allowed)
    assert not {"machine-id", "shadow", "ssh", "sudoers"} & set(seen["top"])
    assert seen["write"] == "EROFS"
    for name, digest in seen["files"].items():
        host = f"/etc/{name}"
        assert digest == (hashlib.sha256(Path(host).read_bytes()).hexdigest() if os.path.isfile(host) else None), name
    if os.path.isdir("/etc/ssl/certs"):
        assert seen["links"] == sorted(os.listdir("/etc/ssl/certs"))[:5]


def test_setuid_files_left_in_the_workspace_are_not_root_s(box):
    name = f"suid-{uuid.uuid4().hex}"
    cr(
        box,
        "exec",
        "-c",
        f"import os, shutil\nshutil.copy('/usr/bin/id', {name!r})\nos.chmod({name!r}, 0o4755)",
        check=0,
    )
    st = (Path(box["CODERUNNER_HOME"]) / "workspace" / name).stat()
    assert st.st_uid != 0, "the sandbox's uid maps to host root: a setuid-root binary was left behind"
    if os.getuid() != 0:
        assert st.st_uid == os.getuid()  # a user's sandbox writes as that user, nobody else


def test_tmp_and_shm_are_bounded_and_die_with_the_script(box):
    code = (
        "import errno, os\nfor d in ('/tmp', '/dev/shm'):\n    fd = os.open(d + '/big', os.O_CREAT | os.O_WRONLY)\n"
        "    try:\n        os.posix_fallocate(fd, 0, 3 << 30)\n        print(d, 'allocated')\n"
        "    except OSError as e:\n        print(d, errno.errorcode[e.errno])\n"
        "    os.close(fd)\nopen('/tmp/left-behind', 'w').write('x')"
    )
    assert cr(box, "exec", "-c", code, check=0).stdout == "/tmp ENOSPC\n/dev/shm ENOSPC\n"
    assert cr(box, "exec", "-c", "import os; print(os.path.exists('/tmp/left-behind'))", check=0).stdout == "False\n"


def test_shell_cannot_type_into_the_callers_terminal(box):
    """TIOCSTI from inside `coderunner shell` pushes bytes into the terminal it holds. Typed
    into the caller's terminal after an `exit`, they would be run by the caller's own
    shell, as the user, on the host: that terminal must never be the sandbox's."""
    marker = f"pwned-{uuid.uuid4().hex}"
    attack = (
        'python3 -c "import fcntl, termios\n'
        f"for c in 'exit\\\\necho {marker}\\\\n': fcntl.ioctl(0, termios.TIOCSTI, c.encode())\"\n"
    )
    master, slave = os.openpty()

    def as_terminal() -> None:  # the slave becomes the controlling terminal, as in a login shell
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        ["coderunner", "shell"], env=box, stdin=slave, stdout=slave, stderr=slave, preexec_fn=as_terminal
    )
    out = b""
    sent = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
        if not sent and b"$ " in out:  # bash's prompt
            os.write(master, attack.encode())
            sent = True
    assert sent, out.decode(errors="replace")
    assert proc.wait(30) == 0
    # what is left in the caller's terminal is what the caller's shell would read next
    os.set_blocking(slave, False)
    try:
        leftover = os.read(slave, 65536)
    except BlockingIOError:
        leftover = b""
    os.close(master)
    os.close(slave)
    assert marker.encode() not in leftover, "code in the sandbox typed a command into the caller's terminal"


def test_chromium_runs_in_a_cell_not_as_the_gateway(box):
    """Pages are chosen by code: the browser rendering them must not share the gateway's
    namespaces (a renderer exploit would otherwise own the gateway and its token)."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cr(box, "browse", f"http://127.0.0.1:{server.server_address[1]}/", check=0, timeout=120)
    finally:
        server.shutdown()

    def ns(pid: int) -> str:
        return os.readlink(f"/proc/{pid}/ns/pid")

    procs = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes()
        for pid in sandbox_pids(box)[1:]
        if Path(f"/proc/{pid}/cmdline").exists()
    }
    [gateway] = [p for p, c in procs.items() if b"coderunner_gateway" in c.split(b"\0")[:3]]
    chromes = [p for p, c in procs.items() if b"chromium" in c.split(b"\0")[0]]
    assert chromes, "no Chromium ran"
    assert all(ns(p) != ns(gateway) for p in chromes)


def test_a_fork_bomb_stops_at_the_process_limit(box):
    """No cgroups on `local`: RLIMIT_NPROC bounds what the sandbox may add to its uid's
    processes (1024), so a fork bomb fails with EAGAIN instead of filling the host."""
    code = r"""
import errno, os, signal, time
kids = []
try:
    while len(kids) < 5000:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        kids.append(pid)
    print('unbounded', len(kids))
except OSError as e:
    print(errno.errorcode[e.errno], len(kids) <= 1024)
for pid in kids:
    os.kill(pid, signal.SIGKILL)
"""
    assert cr(box, "exec", "--timeout", "60", "-c", code, check=0).stdout == "EAGAIN True\n"
    assert cr(box, "exec", "-c", "print('still serving')", check=0).stdout == "still serving\n"
