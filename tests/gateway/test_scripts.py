"""Scripts: code without session_id runs as a fresh process."""

from __future__ import annotations

import json
import threading
import time

from tests.conftest import pid_alive, pids_holding, stream_lines


def test_script_is_a_real_python_process(gateway):
    code = "import sys, os\nprint(sys.argv)\nprint(__name__)\nprint(os.getcwd())\n"
    r = gateway.execute(code, argv=["one", "two words"], filename="tool.py")
    assert r["status"] == "ok" and r["exit_code"] == 0
    lines = r["stdout"].splitlines()
    assert lines[0] == "['tool.py', 'one', 'two words']"
    assert lines[1] == "__main__"
    assert lines[2] == str(gateway.workspace.resolve())
    assert r["session_id"] is None


def test_scripts_share_nothing(gateway):
    gateway.execute("x = 1")
    r = gateway.execute("print(x)")
    assert r["exit_code"] == 1
    assert r["error"]["ename"] == "NameError"


def test_stdin_and_env(gateway):
    code = "import sys, os\ndata = sys.stdin.read()\nprint(data.upper(), os.environ['GREETING'])"
    r = gateway.execute(code, stdin="hello\nworld", env={"GREETING": "hi"})
    assert r["stdout"] == "HELLO\nWORLD hi\n"


def test_no_stdin_reads_eof(gateway):
    r = gateway.execute("import sys\nprint(repr(sys.stdin.read()))")
    assert r["stdout"] == "''\n"


def test_token_is_not_visible_to_code(gateway):
    r = gateway.execute("import os\nprint(sorted(k for k in os.environ if 'TOKEN' in k))")
    assert r["stdout"] == "[]\n"


def test_exit_codes(gateway):
    assert gateway.execute("print('fine')")["exit_code"] == 0
    assert gateway.execute("raise SystemExit(3)")["exit_code"] == 3
    assert gateway.execute("import sys; sys.exit(0)")["status"] == "ok"
    r = gateway.execute("import sys; sys.exit('bad input')")
    assert (r["status"], r["exit_code"], r["stderr"]) == ("error", 1, "bad input\n")
    r = gateway.execute("raise ValueError('nope')")
    assert (r["status"], r["exit_code"]) == ("error", 1)
    assert r["error"]["ename"] == "ValueError" and r["error"]["evalue"] == "nope"
    assert "Traceback (most recent call last)" in r["stderr"]
    assert "_coderunner_boot" not in r["stderr"], "the bootstrap frame must not show"
    r = gateway.execute("raise KeyboardInterrupt")
    assert (r["status"], r["exit_code"]) == ("interrupted", 130)
    r = gateway.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert (r["status"], r["exit_code"], r["signal"]) == ("died", 137, "SIGKILL")


def test_syntax_error(gateway):
    r = gateway.execute("def (")
    assert r["exit_code"] == 1
    assert r["error"]["ename"] == "SyntaxError"


def test_bash_script(gateway):
    r = gateway.execute('echo "args: $@"; echo oops >&2; exit 7', language="bash", argv=["a", "b"])
    assert (r["status"], r["exit_code"]) == ("error", 7)
    assert r["stdout"] == "args: a b\n" and r["stderr"] == "oops\n"
    r = gateway.execute("read line; echo got $line", language="bash", stdin="piped\n")
    assert r["stdout"] == "got piped\n" and r["exit_code"] == 0


def test_interleaved_stdout_stderr_keep_their_order(gateway):
    code = "import sys\nfor i in range(200):\n    print('out', i)\n    print('err', i, file=sys.stderr)\n"
    events = gateway.stream(code)
    seq = stream_lines(events)
    expected = []
    for i in range(200):
        expected += [("stdout", f"out {i}"), ("stderr", f"err {i}")]
    assert seq == expected


def test_subprocess_output_is_captured(gateway):
    r = gateway.execute("import subprocess\nsubprocess.run(['echo', 'from child'])\nprint('parent')")
    assert "from child\n" in r["stdout"] and "parent\n" in r["stdout"]


def test_one_megabyte_delivered_whole(gateway):
    code = "import sys\nfor i in range(16384):\n    sys.stdout.write('%063d\\n' % i)\n"
    r = gateway.execute(code)
    assert len(r["stdout"]) == 16384 * 64
    assert r["stdout"].splitlines()[-1] == f"{16383:063d}"
    assert r["truncated"] is False
    streamed = "".join(e["text"] for e in gateway.stream(code) if e["type"] == "stdout")
    assert streamed == r["stdout"]


def test_timeout_kills_the_whole_process_group(gateway):
    code = (
        "import subprocess, time\n"
        "p = subprocess.Popen(['sleep', '60'], stdout=open('tk-child.mark', 'w'))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    with gateway.client().stream(
        "POST", "/v1/execute", json={"code": code, "timeout": 3}, headers={"Accept": "application/x-ndjson"}
    ) as r:
        lines = r.iter_lines()
        assert "started" in next(e for e in map(json.loads, lines) if e["type"] == "stdout")["text"]
        children = pids_holding(gateway.workspace / "tk-child.mark")
        assert children
        done = [json.loads(line) for line in lines][-1]
    assert time.monotonic() - t0 < 10
    assert (done["status"], done["exit_code"]) == ("timeout", 124)
    deadline = time.monotonic() + 5
    while any(map(pid_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(pid_alive, children)), "the script's child survived the timeout"


def test_background_children_do_not_outlive_the_script(gateway):
    code = (
        "import subprocess, time\n"
        "subprocess.Popen(['sleep', '60'], stdout=open('bg-child.mark', 'w'))\n"
        "while not open('bg-go').read(): time.sleep(0.05)\n"
    )
    (gateway.workspace / "bg-go").write_text("")
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(gateway.execute(code)))
    t.start()
    children = pids_holding(gateway.workspace / "bg-child.mark")
    assert children
    (gateway.workspace / "bg-go").write_text("go")
    t.join(30)
    assert result["exit_code"] == 0
    deadline = time.monotonic() + 5
    while any(map(pid_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(pid_alive, children))


def test_output_is_streamed_as_produced(gateway):
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')"
    with gateway.client().stream(
        "POST", "/v1/execute", json={"code": code}, headers={"Accept": "application/x-ndjson"}
    ) as r:
        t0 = time.monotonic()
        seen = {}
        import json

        for line in r.iter_lines():
            e = json.loads(line)
            if e["type"] == "stdout" and "first" in e["text"]:
                seen["first"] = time.monotonic() - t0
            if e["type"] == "done":
                seen["done"] = time.monotonic() - t0
    assert seen["first"] < 1.0, "the first line waited for the script to end"
    assert seen["done"] >= 1.4


def test_env_file_reaches_scripts_and_sessions(gateway_factory, tmp_path):
    env_file = tmp_path / "keys.env"
    env_file.write_text("# keys\nexport API_KEY='sk-123'\nOTHER=plain value\n")
    gw = gateway_factory("--env-file", str(env_file), "--pool-size", "1")
    assert (
        gw.execute("import os; print(os.environ['API_KEY'], os.environ['OTHER'])")["stdout"] == "sk-123 plain value\n"
    )
    sid = gw.new_session()
    assert gw.execute("import os; print(os.environ['API_KEY'])", session_id=sid)["stdout"] == "sk-123\n"
    r = gw.execute("echo $OTHER", language="bash", env={"OTHER": "per request wins"})
    assert r["stdout"] == "per request wins\n"


def test_a_private_workspace_still_runs_code(tmp_path):
    """A 0700 workspace (as a user's state dir holds it): the gateway's cells must still set up
    in it and the code write it, whoever the gateway runs as."""
    from tests.conftest import start_gateway

    (tmp_path / "gw" / "workspace").mkdir(parents=True, mode=0o700)
    gw = start_gateway(tmp_path / "gw", "--pool-size", "0")
    try:
        r = gw.execute("open('made.txt', 'w').write('ok')\nprint(open('made.txt').read())")
        assert (r["status"], r["stdout"]) == ("ok", "ok\n"), r
    finally:
        gw.stop()


def test_each_script_starts_fresh_even_from_a_warm_interpreter(gateway):
    """Scripts start from interpreters started ahead (each in its own cell), used once: what
    one script imports, sets or leaves in its process is not there for the next."""
    code = (
        "import sys, os\nprint(sorted(k for k in globals() if not k.startswith('__')), 'json' in sys.modules)\n"
        "import json\nleft_behind = 1\nos.environ['LEFT'] = '1'\nprint(os.getpid())"
    )
    first = gateway.execute(code)
    second = gateway.execute(code)
    assert first["stdout"].splitlines()[0] == second["stdout"].splitlines()[0] == "['os', 'sys'] False"
    assert gateway.execute("import os; print(os.environ.get('LEFT'))")["stdout"] == "None\n"
    # a request that sets start-up variables gets an interpreter started for it
    r = gateway.execute("import sys; print(sys.flags.dont_write_bytecode)", env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert r["stdout"] == "1\n"


def test_an_interpreter_below_tmp_still_runs_code(tmp_path):
    """The gateway's Python may live below /tmp (a checkout there, as CI's may be): a cell
    mounts its private /tmp first and the interpreter's directories over it, not the reverse."""
    import site
    import subprocess
    import sys

    from tests.conftest import start_gateway

    venv = tmp_path / "venv"  # pytest's tmp_path is below /tmp
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [pure] = [p for p in site.getsitepackages() if p.endswith("site-packages")][:1]
    inner = next((venv / "lib").glob("python3*")) / "site-packages"
    (inner / "outer.pth").write_text(f"import site; site.addsitedir({pure!r})\n")  # ours, .pth files and all
    gw = start_gateway(tmp_path / "gw", "--pool-size", "1", python=str(venv / "bin" / "python"))
    try:
        r = gw.execute("import sys; print(sys.prefix)")
        assert (r["status"], r["stdout"]) == ("ok", f"{venv}\n"), r
        sid = gw.new_session()
        assert gw.execute("print(6 * 7)", session_id=sid)["stdout"] == "42\n"
    finally:
        gw.stop()


def test_bash_names_the_script_as_the_user_does(gateway, tmp_path):
    # $0 and bash's own messages say the user's name for the script, not the cell's file
    code = 'echo "zero=$0 args=$*"\nno_such_command_here\n'
    r = gateway.execute(code, language="bash", filename="tools/run.sh", argv=["x"])
    assert r["stdout"] == "zero=run.sh args=x\n"
    assert r["stderr"] == "run.sh: line 2: no_such_command_here: command not found\n"
    # with a cwd (exec -w), the path relative to it, as the user typed it
    (gateway.workspace / "proj" / "tools").mkdir(parents=True)
    r = gateway.execute(code, language="bash", filename="tools/run.sh", cwd="proj")
    assert r["stdout"] == "zero=tools/run.sh args=\n"
    assert r["stderr"].startswith("tools/run.sh: line 2: ")
    # unnamed code is bash -c's "bash"; a script too long for one argument still runs, from its file
    assert gateway.execute('echo "$0"', language="bash")["stdout"] == "bash\n"
    long = "# " + "x" * 200_000 + '\necho "ran $#"\n'
    r = gateway.execute(long, language="bash", filename="big.sh", argv=["a", "b"])
    assert (r["exit_code"], r["stdout"]) == (0, "ran 2\n")
