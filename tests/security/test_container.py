"""The three boundaries in the image, on docker and podman (`--isolation setid`): the gateway is
root in the container with six capabilities, code runs as an unprivileged uid with a group of
its own per session. Each test performs an attack from code and asserts how it fails.

Runs where tests/e2e runs (CODERUNNER_E2E_IMAGE and an engine; `scripts/test` arranges both),
on the image already built for it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import cli_env, cr
from tests.e2e.test_docker import ENGINES, start_box
from tests.e2e.test_docker import pytestmark as pytestmark  # skipped without an engine and the image


@pytest.fixture(scope="module", params=ENGINES)
def box(request, tmp_path_factory):
    yield from start_box(request, tmp_path_factory)


def run(box, code: str, *args: str, check: int | None = 0) -> str:
    return cr(box, "exec", *args, "-c", code, check=check).stdout


def token(box) -> str:
    return (Path(box["CODERUNNER_HOME"]) / "secrets" / "token").read_text().strip()


def test_code_has_no_privilege(box):
    code = (
        "import os\nst = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "print(os.getuid() != 0, st['CapEff'].strip(), st['CapPrm'].strip(), st['NoNewPrivs'].strip())"
    )
    assert run(box, code) == "True 0000000000000000 0000000000000000 1\n"
    # nothing setuid to climb through, and the image itself is read-only
    code = (
        "import os\nfound = []\nfor d, _, fs in os.walk('/usr'):\n    for f in fs:\n        p = os.path.join(d, f)\n"
        "        try:\n            if os.lstat(p).st_mode & 0o6000: found.append(p)\n        except OSError: pass\n"
        "print(found)\ntry:\n    open('/etc/coderunner-was-here', 'w')\nexcept OSError as e:\n    print(e.errno)"
    )
    assert run(box, code) == "[]\n30\n"  # EROFS


def test_the_token_is_nowhere_code_can_read(box):
    secret = token(box)
    code = (
        "import glob, os\nhits, denied = [], 0\n"
        "for p in glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline'):\n"
        "    try:\n"
        f"        hits += [p] if {secret!r}.encode() in open(p, 'rb').read() else []\n"
        "    except PermissionError:\n        denied += 1\n    except OSError:\n        pass\n"
        "for root in ('/run', '/tmp', '/home', '/workspace', '/opt/coderunner', '/etc'):\n"
        "    for d, _, fs in os.walk(root):\n        for f in fs:\n            try:\n"
        f"                hits += [os.path.join(d, f)] if {secret!r}.encode() in open(os.path.join(d, f), 'rb').read() "
        "else []\n            except OSError:\n                pass\n"
        "print(hits, denied > 0)"
    )
    # docker-init's and the gateway's environments are root's: unreadable, not merely clean
    assert run(box, code) == "[] True\n"


def test_code_cannot_ptrace_signal_or_read_the_gateway(box):
    code = r"""
import ctypes, errno, os, signal
libc = ctypes.CDLL(None, use_errno=True)
def cmdline(p):
    try:
        return open(f'/proc/{p}/cmdline', 'rb').read()
    except OSError:
        return b''
gw = [int(p) for p in os.listdir('/proc') if p.isdigit() and b'coderunner_gateway' in cmdline(p)]
out = []
for pid in gw + [1]:
    r = libc.ptrace(16, pid, 0, 0)
    out.append(('ptrace', errno.errorcode.get(ctypes.get_errno()) if r != 0 else 'ATTACHED'))
    try:
        os.kill(pid, signal.SIGSTOP)
        out.append(('kill', 'SENT'))
    except PermissionError:
        out.append(('kill', 'EPERM'))
    for f in ('environ', 'mem', 'fd/0'):
        try:
            open(f'/proc/{pid}/{f}', 'rb').read(1)
            out.append((f, 'READ'))
        except PermissionError:
            out.append((f, 'EACCES'))
print(len(gw) >= 1, sorted(set(out)))
"""
    assert run(box, code) == (
        "True [('environ', 'EACCES'), ('fd/0', 'EACCES'), ('kill', 'EPERM'), ('mem', 'EACCES'), ('ptrace', 'EPERM')]\n"
    )


def test_sessions_cannot_reach_each_other(box):
    cr(box, "session", "new", "alice", check=0)
    cr(box, "session", "new", "bob", check=0)
    run(
        box,
        "import os\nsecret = 'alice-only'\nopen(os.path.expanduser('~/diary'), 'w').write(secret)\n"
        "open(os.path.join(os.environ['TMPDIR'], 'note'), 'w').write(secret)\nprint(os.getgid())",
        "-s",
        "alice",
    )
    alice_home = run(box, "import os; print(os.environ['HOME'])", "-s", "alice").strip()
    alice_tmp = run(box, "import os; print(os.environ['TMPDIR'])", "-s", "alice").strip()
    alice_dir = str(Path(alice_home).parent)
    code = f"""
import glob, os, signal
out = []
for p in ({alice_home!r} + '/diary', {alice_tmp!r} + '/note', {alice_dir!r} + '/kernel.json'):
    try:
        open(p).read()
        out.append('READ ' + p)
    except PermissionError:
        out.append('EACCES')
# the kernels of other sessions: their connection files and sockets are in their cells
out.append(sorted(glob.glob('/tmp/coderunner-gw-*/cells/*/kernel.json')))
print(out)
"""
    assert run(box, code, "-s", "bob") == "['EACCES', 'EACCES', 'EACCES', []]\n"
    # and a script is a cell too; the shared workspace stays shared
    run(box, "open('shared.txt', 'w').write('for everyone')", "-s", "alice")
    assert run(box, "print(open('shared.txt').read())") == "for everyone\n"
    assert "alice-only" not in run(box, code, check=None)


def test_a_script_ends_with_everything_it_started(box):
    marker = f"fork-{uuid.uuid4().hex}"
    code = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            with open({marker!r}, 'a') as f:
                f.write('x')
            time.sleep(0.1)
    os._exit(0)
print('started', flush=True)
time.sleep(60)
"""
    t0 = time.monotonic()
    r = cr(box, "exec", "--timeout", "2", "-c", code, check=124)
    assert time.monotonic() - t0 < 30 and "started" in r.stdout
    path = Path(box["CODERUNNER_HOME"]) / "workspace" / marker
    size = path.stat().st_size
    time.sleep(1.5)
    assert path.stat().st_size == size, "a double-forked, setsid'd grandchild outlived the script's timeout"


def test_the_gateway_s_socket_dir_and_skills_are_closed_to_code(box):
    code = r"""
import errno
out = []
for path in ('/run/x', '/opt/coderunner/skills/public/pdf-text-replace/SKILL.md',
             '/opt/coderunner/venv/lib/evil.pth'):
    try:
        open(path, 'a').close()
        out.append('WROTE')
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(out)
"""
    # root's 0644 file on a read-only mount: the permission check comes first (EACCES)
    assert run(box, code) == "['EACCES', 'EACCES', 'EROFS']\n"


@pytest.mark.parametrize("engine_image", ENGINES)
def test_without_network_the_gateway_s_socket_is_out_of_reach(engine_image, tmp_path_factory):
    """--no-network: the host talks to the gateway over a socket in a mounted host dir. Code
    (the host user's uid on docker) must not reach, replace or relay it."""
    engine, image = engine_image
    home = tmp_path_factory.mktemp(f"nonet-{engine}")
    env = cli_env(home, CODERUNNER_NAME=f"cr-nonet-{engine}-{uuid.uuid4().hex[:8]}")
    cr(env, "up", "--runtime", engine, "--image", image, "--no-network", check=0, timeout=300)
    try:
        code = r"""
import errno, os, socket
out = []
for path in ('/run/coderunner/gateway/run/gateway.sock', '/run/coderunner/gateway/run'):
    try:
        os.rename(path, path + '.x')
        out.append('RENAMED')
    except OSError as e:
        out.append(errno.errorcode[e.errno])
s = socket.socket(socket.AF_UNIX)
try:
    s.connect('/run/coderunner/gateway/run/gateway.sock')
    out.append('CONNECTED')
except OSError as e:
    out.append(errno.errorcode[e.errno])
print(out)
"""
        assert cr(env, "exec", "-c", code, check=0).stdout == "['EACCES', 'EACCES', 'EACCES']\n"
    finally:
        cr(env, "down", "--remove", timeout=120)


def test_chromium_renders_as_the_code_s_identity_not_the_gateway_s(box):
    """Pages are chosen by code: the browser must not be root beside the gateway's token."""
    cr(box, "session", "new", "pages", "--lang", "bash", check=0)
    cr(
        box,
        "exec",
        "-s",
        "pages",
        "--lang",
        "bash",
        "-c",
        "mkdir -p site && echo '<html><body>hello</body></html>' > site/index.html && "
        "(cd site && nohup python3 -m http.server 8766 --bind 127.0.0.1 >/dev/null 2>&1 &) && sleep 1",
        check=0,
    )
    assert "hello" in cr(box, "browse", "http://127.0.0.1:8766/", check=0, timeout=120).stdout
    code = r"""
import os
uids = set()
for p in os.listdir('/proc'):
    try:
        cmd = open(f'/proc/{p}/cmdline', 'rb').read()
        if b'chromium' in cmd.split(b'\0')[0]:
            uids |= {int(l.split()[1]) for l in open(f'/proc/{p}/status') if l.startswith('Uid:')}
    except OSError:
        pass
print(sorted(uids) == [os.getuid()], sorted(uids))
"""
    assert run(box, code).startswith("True")
