"""Attacks from code the gateway runs, each asserting the specific way it now fails.

Issue 12's "Gateway" and "Session" boundaries (and the host items that concern
code run through the gateway), performed for real: the attack is Python (or
bash) sent to a real gateway process, run in a script, a python session or a
bash session, exactly as an agent's code would be. The code reports what it
found as one ``RESULT:{json}`` line; the test asserts the errno that stopped
it (ESRCH, ENOENT, EACCES, EROFS, ENOSPC...) or that nothing was found,
together with a positive control wherever "nothing found" could also mean
"the attack did not look".

The gateway runs with its default isolation (``auto``: a bubblewrap cell per
script, kernel and bash session on this machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningGateway, descendants, start_gateway, wait_warm

# What every attack starts with: errno names for the failures, and one RESULT line.
PRELUDE = r'''
import ctypes, errno, glob, json, os, stat, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
libc.syscall.restype = ctypes.c_long
SYS_pidfd_open = 434  # the same number on x86_64 and aarch64

def ename(num):
    return errno.errorcode.get(num, str(num))

def cerr(ret):
    """'OK' when a libc call succeeded, else its errno name (read right after the call)."""
    return "OK" if ret != -1 else ename(ctypes.get_errno())

def oserr(fn, *args):
    try:
        fn(*args)
    except OSError as exc:
        return ename(exc.errno)
    return "OK"

def report(**kw):
    print("RESULT:" + json.dumps(kw), flush=True)

# Trees of installed software (read-only binds of the host's system and Python):
# the gateway never writes there, and reading 15 GB of them would take minutes.
SYSTEM = ["/proc", "/sys", "/usr", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
SYSTEM += sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})

def skipped(path):
    return any(path == s or path.startswith(s.rstrip("/") + "/") for s in SYSTEM)

def walk_files(top="/", budget=15.0):
    """Every file visible under top but the system trees, the likely places first
    (bounded in time: TimeoutError past the budget)."""
    end = time.monotonic() + budget
    firsts = [p for p in ("/tmp", "/run", "/dev/shm", "/var/tmp", os.environ.get("HOME"))
              if top == "/" and p and os.path.isdir(p)]
    done = []
    for start in [*firsts, top]:
        for root, dirs, files in os.walk(start):
            if time.monotonic() > end:
                raise TimeoutError(root)
            if skipped(root) or root in done:
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if not skipped(os.path.join(root, d)) and os.path.join(root, d) not in done]
            for name in files:
                yield os.path.join(root, name)
        done.append(start)

def grep_files(needle, top="/", limit=4 << 20):
    """(files containing needle, number of files read)."""
    hits, read = [], 0
    for path in walk_files(top):
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                continue
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        read += 1
        if needle in data:
            hits.append(path)
    return hits, read

def proc_grep(needle):
    """/proc/*/environ and /proc/*/cmdline that contain needle, and how many pids were seen."""
    hits, pids = [], [p for p in os.listdir("/proc") if p.isdigit()]
    for pid in pids:
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    if needle in f.read():
                        hits.append(f"/proc/{pid}/{name}")
            except OSError:
                pass
    return hits, pids

def kernel_files():
    """Jupyter connection files visible anywhere (kernel*.json), and whether the search ended."""
    found = []
    try:
        for path in walk_files("/"):
            name = os.path.basename(path)
            if name.startswith("kernel") and name.endswith(".json"):
                found.append(path)
    except TimeoutError as exc:
        return found, str(exc)
    return found, True
'''


def attack_code(body: str, **args) -> str:
    """PRELUDE + body, with ``ARGS`` = args."""
    return PRELUDE + f"ARGS = json.loads({json.dumps(json.dumps(args))})\n" + body


def attack(
    gw: RunningGateway,
    body: str,
    *,
    session_id: str | None = None,
    timeout: float = 60,
    filename: str | None = None,
    **args,
) -> dict:
    """Run the attack and return its RESULT dict."""
    code = attack_code(body, **args)
    fields: dict = {"session_id": session_id} if session_id else {}
    if filename:
        fields["filename"] = filename
    r = gw.client(timeout=timeout).post("/v1/execute", json={"code": code, "timeout": timeout, **fields})
    assert r.status_code == 200, r.text
    res = r.json()
    lines = [ln for ln in res["stdout"].splitlines() if ln.startswith("RESULT:")]
    assert lines, f"the attack reported nothing: {res}"
    return json.loads(lines[-1][len("RESULT:") :])


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def kernel_pids(gw: RunningGateway) -> dict[int, str]:
    """Host pid -> connection file of every kernel the gateway runs (found from the host)."""
    out = {}
    for pid in descendants(gw.proc.pid):
        argv = cmdline(pid)
        # the kernel itself (python -c KERNEL_LAUNCH -f .../kernel.json), not the bwrap around it
        if "-f" in argv[:-1] and argv[argv.index("-f") + 1].endswith("kernel.json"):
            if "bwrap" not in os.path.basename(argv[0]):
                out[pid] = argv[argv.index("-f") + 1]
    return out


def host_processes_with(text: str, wait: float = 3.0) -> list[int]:
    """Pids on the host whose command line mentions text, once none is left or after wait seconds."""
    end = time.monotonic() + wait
    while True:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and text in " ".join(cmdline(int(p)))]
        if not pids or time.monotonic() > end:
            return pids
        time.sleep(0.1)


def growth(path: Path, settle: float = 1.0, window: float = 1.5) -> tuple[int, int]:
    """Size of path after settle seconds, and again window seconds later."""
    time.sleep(settle)
    first = path.stat().st_size if path.exists() else 0
    time.sleep(window)
    return first, path.stat().st_size if path.exists() else 0


def new_session(gw: RunningGateway, language: str = "python") -> str:
    return gw.new_session(language=language)


@pytest.fixture(scope="module")
def gw(tmp_path_factory) -> RunningGateway:
    """One gateway for the attacks that need no special options (a warm kernel ready)."""
    g = start_gateway(tmp_path_factory.mktemp("isolation"), "--pool-size", "1")
    wait_warm(g, 1)
    yield g
    g.stop()


# -- Gateway: the token ---------------------------------------------------------------

TOKEN_HUNT = r"""
token = ARGS["token_reversed"][::-1].encode()  # the code itself must not hold the token
# positive control: a file of our own that holds the token must be found
control = os.path.join(os.environ.get("TMPDIR") or "/tmp", "control-token")
with open(control, "wb") as f:
    f.write(b"x" + token + b"x")
try:
    fs_hits, fs_read = grep_files(token)
    fs_done = True
except TimeoutError as exc:
    fs_hits, fs_read, fs_done = [], 0, str(exc)
os.unlink(control)
proc_hits, pids = proc_grep(token)
# the gateway's runtime dir: anything visible there but this cell's own files
own = os.path.dirname(os.environ["HOME"])
runtime = [p for d in glob.glob("/tmp/coderunner-gw-*") for p in walk_files(d) if not p.startswith(own + "/")]
secret_file = oserr(lambda: open("/run/coderunner/secrets/token").read())
report(control_found=control in fs_hits or os.path.realpath(control) in fs_hits,
       fs_hits=[h for h in fs_hits if os.path.realpath(h) != os.path.realpath(control)],
       fs_read=fs_read, fs_done=fs_done, proc_hits=proc_hits, pids=len(pids),
       runtime_files=runtime, secret_file=secret_file)
"""


def test_code_cannot_find_the_token(gw):
    """Issue 12: the token was in the gateway's environ, a temp file, /run/coderunner/secrets.
    From a script and from a python session, nothing visible holds it."""
    for where in ("script", "session"):
        sid = new_session(gw) if where == "session" else None
        res = attack(gw, TOKEN_HUNT, session_id=sid, token_reversed=gw.token[::-1])
        assert res["control_found"], f"{where}: the search did not work: {res}"
        assert res["fs_done"] is True, f"{where}: the search did not finish: {res}"
        assert res["fs_hits"] == [], f"{where}: files holding the token: {res}"
        assert res["proc_hits"] == [], f"{where}: processes holding the token: {res}"
        assert res["pids"] >= 1
        assert res["runtime_files"] == [], f"{where}: the gateway's runtime dir is visible: {res}"
        assert res["secret_file"] == "ENOENT"


def test_code_in_bash_cannot_find_the_token(gw):
    sid = new_session(gw, "bash")
    code = (
        f"T=$(printf %s '{gw.token[::-1]}' | rev)\n"  # the cell's script must not hold the token
        'grep -l -a -F -e "$T" /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; '
        'grep -r -l -a -F -e "$T" /tmp /run /dev/shm "$HOME" 2>/dev/null; '
        "ls /proc | grep -c '^[0-9]'; echo END"
    )
    r = gw.execute(code, session_id=sid)
    lines = r["stdout"].split()
    assert lines[-1] == "END", r
    assert lines[:-2] == [], f"the token is visible in a bash session: {r['stdout']}"
    assert int(lines[-2]) >= 1


def test_gateway_environ_has_no_token_from_the_host(gw):
    """Started with CODERUNNER_TOKEN in its environment, the gateway re-executes itself:
    its /proc/PID/environ and cmdline (read by the host, as root) no longer hold it. As
    the gateway's own user, its environ is not even readable: it is non-dumpable."""
    pid = gw.proc.pid
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            open(f"/proc/{pid}/environ", "rb").read()
    else:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
        assert environ, "could not read the gateway's environ"
        assert gw.token.encode() not in environ
        assert b"CODERUNNER_TOKEN=" not in environ
    assert gw.token not in " ".join(cmdline(pid))
    assert httpx.get(gw.url + "/v1/sessions", headers=gw.headers).status_code == 200  # it still has it


# -- Gateway: its process --------------------------------------------------------------

PROCESS_ATTACK = r"""
out = {}
for pid in ARGS["pids"]:
    r = {}
    ret = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
    r["ptrace"] = cerr(ret)
    if ret == 0:  # do not leave it stopped
        os.waitpid(pid, 0x40000000)
        libc.ptrace(17, pid, None, None)
    r["kill0"] = oserr(os.kill, pid, 0)
    if pid in (os.getpid(), os.getppid()):  # without a PID namespace: do not stop ourselves
        r["sigstop"] = "self"
    else:
        r["sigstop"] = oserr(os.kill, pid, signal.SIGSTOP)
        if r["sigstop"] == "OK":
            os.kill(pid, signal.SIGCONT)
    fd = libc.syscall(SYS_pidfd_open, pid, 0)
    r["pidfd_open"] = cerr(fd)
    if fd >= 0:
        # pidfd_getfd: copy its fds 0..20 (the listening socket among them)
        r["pidfd_getfd"] = sorted({cerr(libc.syscall(438, fd, n, 0)) for n in range(21)})
        os.close(fd)
    out[str(pid)] = r
report(targets=out)
"""


def test_code_cannot_ptrace_signal_or_pidfd_the_gateway(gw):
    """PTRACE_ATTACH, kill(pid, 0), SIGSTOP and pidfd_open of the gateway: its pid does not
    exist in the code's view (ESRCH), from a script and from a session."""
    for sid in (None, new_session(gw)):
        res = attack(gw, "import signal\n" + PROCESS_ATTACK, session_id=sid, pids=[gw.proc.pid])
        r = res["targets"][str(gw.proc.pid)]
        assert r == {"ptrace": "ESRCH", "kill0": "ESRCH", "sigstop": "ESRCH", "pidfd_open": "ESRCH"}, r
    assert httpx.get(gw.url + "/health").json()["status"] == "ok"


def test_code_cannot_ptrace_another_sessions_kernel(gw):
    """Session A (and a script) attack every kernel the gateway runs, by their host pids
    (found by the test): none exists in their view."""
    a, b = new_session(gw), new_session(gw)
    gw.execute("x = 1", session_id=b)
    kernels = kernel_pids(gw)
    assert len(kernels) >= 2, kernels
    for sid in (a, None):
        res = attack(gw, "import signal\n" + PROCESS_ATTACK, session_id=sid, pids=sorted(kernels))
        for pid, r in res["targets"].items():
            assert r == {"ptrace": "ESRCH", "kill0": "ESRCH", "sigstop": "ESRCH", "pidfd_open": "ESRCH"}, (pid, r)
    assert gw.execute("print(x)", session_id=b)["stdout"] == "1\n"


def test_code_cannot_open_the_gateways_proc_files(gw):
    """/proc/<gateway>/{mem,environ,fd,maps,root} do not exist in the code's view."""
    body = r"""
pid = ARGS["pid"]
report(mem=oserr(lambda: open(f"/proc/{pid}/mem", "rb").read(1)),
       environ=oserr(lambda: open(f"/proc/{pid}/environ", "rb").read()),
       fd=oserr(os.listdir, f"/proc/{pid}/fd"),
       fd0=oserr(lambda: open(f"/proc/{pid}/fd/0", "rb")),
       maps=oserr(lambda: open(f"/proc/{pid}/maps").read()),
       root=oserr(os.listdir, f"/proc/{pid}/root/"),
       own_environ=oserr(lambda: open("/proc/self/environ", "rb").read()))
"""
    res = attack(gw, body, pid=gw.proc.pid)
    assert res["own_environ"] == "OK"  # control: /proc works
    for name in ("mem", "environ", "fd", "fd0", "maps", "root"):
        assert res[name] in ("ENOENT", "EACCES"), res


def test_code_cannot_reach_the_gateways_socket(tmp_path):
    """A gateway on a unix socket (as `up --no-network` runs it): code can neither see,
    replace nor connect to the socket."""
    sock_dir = tmp_path / "run"
    sock_dir.mkdir()
    sock = sock_dir / "gateway.sock"
    gw = start_gateway(tmp_path / "gw", "--uds", str(sock), "--pool-size", "0")
    try:
        before = sock.stat().st_ino
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://localhost", headers=gw.headers, timeout=60
        )
        gw.client = lambda **kw: client  # route attack() through the socket
        body = r"""
import socket
path = ARGS["sock"]
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
report(stat=oserr(os.stat, path), rename=oserr(os.rename, path, path + ".x"),
       unlink=oserr(os.unlink, path), symlink=oserr(os.symlink, "/tmp", path + ".y"),
       listdir=oserr(os.listdir, os.path.dirname(path)), connect=oserr(connect))
"""
        res = attack(gw, body, sock=str(sock))
        assert res["stat"] == res["rename"] == res["unlink"] == res["connect"] == "ENOENT", res
        assert res["listdir"] == "ENOENT", res
        assert res["symlink"] in ("ENOENT", "EROFS", "EACCES"), res
        assert sock.stat().st_ino == before and stat.S_ISSOCK(sock.stat().st_mode)
        assert sorted(os.listdir(sock_dir)) == ["gateway.sock"]
        client.close()
    finally:
        gw.stop()


# -- Gateway: skills -------------------------------------------------------------------

SKILL_ATTACK = r"""
out = {}
for d in ARGS["dirs"]:
    name = "pdf-text-replace"
    r = {"visible": os.path.isdir(d)}
    r["mkdir"] = oserr(os.mkdir, os.path.join(d, ARGS["fresh"]))
    r["create"] = oserr(lambda: os.close(os.open(os.path.join(d, ARGS["fresh"] + ".md"), os.O_WRONLY | os.O_CREAT, 0o644)))
    # shadow: an existing skill's SKILL.md opened for writing (nothing written if it opens)
    r["open_existing"] = oserr(lambda: os.close(os.open(os.path.join(d, ARGS["existing"], "SKILL.md"), os.O_WRONLY | os.O_APPEND)))
    r["shadow"] = oserr(lambda: os.makedirs(os.path.join(d, name + "-x", "sub")))
    r["rename"] = oserr(os.rename, os.path.join(d, ARGS["existing"]), os.path.join(d, ARGS["fresh"] + "-moved"))
    out[d] = r
report(dirs=out)
"""


def test_code_cannot_write_the_skills_dirs(gateway_factory, tmp_path):
    """Code writes a SKILL.md into the public skills dir (the package's) or the user
    skills dir: refused (read-only, or not in view)."""
    user = tmp_path / "user-skills"
    (user / "mine").mkdir(parents=True)
    (user / "mine" / "SKILL.md").write_text("---\nname: mine\ndescription: a user skill\n---\nbody\n")
    gw = gateway_factory("--pool-size", "0", "--user-skills-dir", str(user))
    skills = gw.client().get("/v1/skills").json()["skills"]
    public = sorted({str(Path(s["path"]).parent) for s in skills if s["source"] != "user"})
    assert public, f"no public skills listed: {skills}"
    existing = {str(user): "mine"}
    for s in skills:
        if s["source"] != "user":
            existing.setdefault(str(Path(s["path"]).parent), s["name"])
    fresh = f"zz-attack-{secrets.token_hex(4)}"
    dirs = [*public, str(user)]
    before = {d: sorted(os.listdir(d)) for d in dirs}
    try:
        for d in dirs:
            res = attack(gw, SKILL_ATTACK, dirs=[d], fresh=fresh, existing=existing[d])
            r = res["dirs"][d]
            for op in ("mkdir", "create", "open_existing", "shadow", "rename"):
                assert r[op] in ("EROFS", "EACCES", "ENOENT", "EPERM"), (d, r)
            assert {d: sorted(os.listdir(d)) for d in dirs} == before
    finally:  # on a gateway where the attack works, leave the package as it was
        for d in dirs:
            for name in (fresh, fresh + ".md", fresh + "-moved", "pdf-text-replace-x"):
                p = Path(d) / name
                if name.endswith("-moved") and p.exists():
                    p.rename(Path(d) / existing[d])
                elif p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()


# -- Session: kernels -------------------------------------------------------------------

KERNEL_HUNT = r'''
def own_connection_file():
    try:
        from ipykernel import get_connection_file
        return os.path.realpath(get_connection_file())
    except Exception:
        return None

def ask(info, code, wait=3.0):
    """Execute code in the kernel described by info; its stdout, or None when no answer."""
    from jupyter_client import BlockingKernelClient
    kc = BlockingKernelClient()
    kc.load_connection_info(info)
    kc.start_channels()
    try:
        msg_id = kc.execute(code)
        end = time.monotonic() + wait
        text = None
        while time.monotonic() < end:
            try:
                msg = kc.get_iopub_msg(timeout=max(0.05, end - time.monotonic()))
            except Exception:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text = (text or "") + msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return text or ""
        return text
    finally:
        kc.stop_channels()

own = own_connection_file()
found, search_done = kernel_files()
found = [p for p in found if os.path.realpath(p) != own]
answers = {}
for path in found:  # what the attack does with what it finds
    try:
        with open(path) as f:
            info = json.load(f)
        answers[path] = ask(info, ARGS["code"])
    except Exception as exc:
        answers[path] = "error: " + type(exc).__name__
given = {}
for path in ARGS.get("paths", []):  # connection files the test knows of (host paths)
    given[path] = oserr(lambda: open(path).read())
leaked = None
if ARGS.get("info"):  # B's connection info, as if its key had leaked
    leaked = ask(ARGS["info"], ARGS["code"])
report(own=own, found=found, search_done=search_done, answers=answers, given=given, leaked=leaked)
'''


def test_session_cannot_reach_another_sessions_kernel(gw):
    """Session A looks for kernel connection files anywhere it can see, and uses B's
    (path and key handed over by the test, as if leaked) to read B's variables: it finds
    only its own, B's path does not exist, and B's sockets do not answer."""
    a, b = new_session(gw), new_session(gw)
    secret = secrets.token_hex(8)
    r = gw.execute(
        f"secret_b = {secret!r}\nfrom ipykernel import get_connection_file\nprint(get_connection_file())", session_id=b
    )
    b_file = r["stdout"].strip()
    with open(b_file) as f:  # read on the host, where it is
        b_info = json.load(f)
    res = attack(gw, KERNEL_HUNT, session_id=a, code="print(secret_b)", paths=[b_file], info=b_info)
    assert res["own"], res  # control: A knows its own connection file
    assert res["found"] == [], f"session A sees other kernels' connection files: {res}"
    assert res["search_done"] is True, res
    assert res["answers"] == {}
    assert res["given"] == {b_file: "ENOENT"}, res
    assert res["leaked"] is None, f"B's kernel answered session A: {res}"
    # a script sees none at all
    res = attack(gw, KERNEL_HUNT, code="print(secret_b)", paths=[b_file], info=b_info)
    assert res["found"] == [] and res["given"] == {b_file: "ENOENT"} and res["leaked"] is None, res
    assert res["search_done"] is True, res
    assert gw.execute("print(secret_b)", session_id=b)["stdout"].strip() == secret


def test_script_cannot_plant_code_in_a_warm_kernel(gateway_factory):
    """A script looks for the warm kernel's connection file (and is handed its host path)
    to plant code in it; the next session gets a clean kernel."""
    gw = gateway_factory("--pool-size", "1")
    wait_warm(gw, 1)
    warm = kernel_pids(gw)
    assert len(warm) == 1, warm
    warm_file = next(iter(warm.values()))
    with open(warm_file) as f:
        warm_info = json.load(f)
    plant = "import builtins; builtins.planted = 'pwned'; planted = 'pwned'; print('planted')"
    res = attack(gw, KERNEL_HUNT, code=plant, paths=[warm_file], info=warm_info)
    assert res["found"] == [], f"the script sees kernel connection files: {res}"
    assert res["search_done"] is True, res
    assert res["given"] == {warm_file: "ENOENT"}, res
    assert res["leaked"] is None, f"the warm kernel ran the script's code: {res}"
    sid = new_session(gw)
    r = gw.execute("import builtins\nprint('planted' in globals(), hasattr(builtins, 'planted'))", session_id=sid)
    assert r["stdout"] == "False False\n", r


# -- Session: private files ---------------------------------------------------------------


def test_sessions_private_files_are_private(gw):
    """Session A writes $HOME/secret and $TMPDIR/secret: session B and a script cannot read
    them (the paths do not exist in their view); /workspace is shared (control)."""
    a, b = new_session(gw), new_session(gw)
    word = secrets.token_hex(8)
    r = gw.execute(
        "import os, tempfile, json\n"
        "paths = [os.path.join(os.environ['HOME'], 'secret'), os.path.join(tempfile.gettempdir(), 'secret')]\n"
        f"for p in paths:\n    open(p, 'w').write({word!r})\n"
        f"open('shared.txt', 'w').write({word!r})\n"
        "print(json.dumps(paths))",
        session_id=a,
    )
    paths = json.loads(r["stdout"])
    body = r"""
res = {p: oserr(lambda: open(p).read()) for p in ARGS["paths"]}
report(private=res, shared=open("shared.txt").read(), home=os.environ["HOME"])
"""
    for sid in (b, None):
        res = attack(gw, body, session_id=sid, paths=paths)
        assert res["shared"] == word  # control: the workspace is shared
        assert res["private"] == dict.fromkeys(paths, "ENOENT"), res
        assert res["home"] != os.path.dirname(paths[0])
    # the owner still reads them
    assert gw.execute(f"print(open({paths[1]!r}).read())", session_id=a)["stdout"].strip() == word


# -- Session: a script ends with everything it started --------------------------------------

GRANDCHILD = r"""
marker = ARGS["marker"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(300):  # 60 s at most, should it survive
            with open(marker, "a") as f:
                f.write("x\n")
            time.sleep(0.2)
        os._exit(0)
    os._exit(0)
os.wait()
for _ in range(50):
    if os.path.exists(marker):
        break
    time.sleep(0.1)
report(started=os.path.exists(marker))
if ARGS["hang"]:
    time.sleep(60)
"""


def test_double_forked_setsid_grandchild_dies_with_its_script(gw):
    name = f"grandchild-{secrets.token_hex(4)}"
    marker = gw.workspace / name
    res = attack(gw, GRANDCHILD, marker=str(marker), hang=False, filename=name + ".py")
    assert res["started"]
    assert host_processes_with(name + ".py") == [], "processes of the script are left on the host"
    first, second = growth(marker)
    assert first == second, f"the grandchild outlived its script: {first} -> {second} bytes"


def test_double_forked_setsid_grandchild_dies_at_the_timeout(gw):
    name = f"grandchild-{secrets.token_hex(4)}"
    marker = gw.workspace / name
    code = attack_code(GRANDCHILD, marker=str(marker), hang=True)
    t0 = time.monotonic()
    r = gw.execute(code, timeout=2, filename=name + ".py")
    elapsed = time.monotonic() - t0
    assert r["status"] == "timeout", r
    assert elapsed < 6, f"a 2 s timeout took {elapsed:.1f} s"
    assert marker.exists()
    assert host_processes_with(name + ".py") == [], "processes of the script are left on the host"
    first, second = growth(marker)
    assert first == second, f"the grandchild outlived the timeout: {first} -> {second} bytes"


def test_json_client_that_disconnects_stops_its_code(gw):
    """A JSON-mode client that gives up (1 s read timeout) on `while True`: the code stops."""
    name = f"loop-{secrets.token_hex(4)}"
    marker = gw.workspace / name
    code = (
        "import time\n"
        "for _ in range(600):  # 60 s at most\n"
        f"    with open({str(marker)!r}, 'a') as f:\n"
        "        f.write('x\\n')\n"
        "    time.sleep(0.1)\n"
    )
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.url + "/v1/execute",
            json={"code": code, "timeout": 60, "filename": name + ".py"},
            headers=gw.headers,
            timeout=httpx.Timeout(10, read=1),
        )
    assert marker.exists()
    first, second = growth(marker, settle=3.0)
    assert first == second, f"the code kept running after its client left: {first} -> {second} bytes"
    assert host_processes_with(name + ".py") == [], "processes of the script are left on the host"


# -- Host: bounded private /tmp and /dev/shm, no host environment, no setuid root ------------


def test_cell_tmp_and_shm_are_bounded_and_vanish(gateway_factory):
    gw = gateway_factory("--pool-size", "0", "--cell-tmp-size", "16")
    body = r"""
def fill(path, mib):
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
res = {}
for d in ("/tmp", "/dev/shm"):
    res[d] = {"small": oserr(fill, d + "/small", 4), "big": oserr(fill, d + "/big", 64)}
    for name in ("big",):
        try:
            os.unlink(d + "/" + name)
        except OSError:
            pass
report(res=res)
"""
    res = attack(gw, body)["res"]
    for d in ("/tmp", "/dev/shm"):
        assert res[d] == {"small": "OK", "big": "ENOSPC"}, res
    after = attack(gw, 'report(res={d: oserr(os.stat, d + "/small") for d in ("/tmp", "/dev/shm")})')["res"]
    assert after == {"/tmp": "ENOENT", "/dev/shm": "ENOENT"}, after


def test_code_sees_no_host_environment(gateway_factory):
    """A gateway started with HOST_SECRET in its environment: neither os.environ nor any
    /proc/*/environ visible to code (script, python or bash session) holds it."""
    value = "host-secret-" + secrets.token_hex(8)
    gw = gateway_factory("--pool-size", "0", env={"HOST_SECRET": value, "AWS_SECRET_ACCESS_KEY": value + "-aws"})
    body = r"""
hits, pids = proc_grep(ARGS["value"].encode())
report(env=[k for k, v in os.environ.items() if ARGS["value"] in v], proc=hits, pids=len(pids),
       path="PATH" in os.environ)
"""
    for sid in (None, new_session(gw)):
        res = attack(gw, body, session_id=sid, value=value)
        assert res["path"] and res["pids"] >= 1  # control: an environment and a /proc are there
        assert res["env"] == [] and res["proc"] == [], res
    sid = new_session(gw, "bash")
    r = gw.execute("env; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; echo END", session_id=sid)
    assert r["stdout"].rstrip().endswith("END") and "PATH=" in r["stdout"]
    assert value not in r["stdout"], r["stdout"]


def test_code_cannot_leave_a_setuid_root_file_in_the_workspace(gw):
    """Issue 12: run as root, the sandbox uid mapped to host root, and code left a setuid
    copy of `id` in the workspace. Here the gateway runs as root: a setuid file that code
    makes must not be a setuid-root file on the host."""
    name = f"suid-{secrets.token_hex(4)}"
    body = r"""
import shutil
path = ARGS["name"]
shutil.copy("/usr/bin/id", path)
report(chmod=oserr(os.chmod, path, 0o4755), uid=os.getuid())
"""
    res = attack(gw, body, name=name)
    st = (gw.workspace / name).stat()
    assert not (st.st_mode & stat.S_ISUID and st.st_uid == 0), (
        f"code (uid {res['uid']} in its cell) left a setuid-root file on the host: "
        f"mode {oct(st.st_mode)} uid {st.st_uid}; {res}"
    )


def test_gateway_survives_the_attacks(gw):
    """After everything above, the shared gateway is still healthy and unstopped."""
    with open(f"/proc/{gw.proc.pid}/stat") as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    assert state in ("S", "R"), state
    assert httpx.get(gw.url + "/health").json()["status"] == "ok"
