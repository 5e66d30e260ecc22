"""`coderunner down` on local is graceful: running execs end as `died`, the CLI says so and exits 137."""

from __future__ import annotations

import subprocess
import threading
import time

from tests.cli.conftest import cli_env, cr, needs_bwrap

CODE = "import time\nprint('go', flush=True)\ntime.sleep(120)\n"


@needs_bwrap
def test_down_ends_running_execs_as_died(tmp_path):
    from coderunner_cli import CodeRunner

    env = cli_env(tmp_path)
    cr(env, "up", "--runtime", "local", timeout=180, check=0)
    try:
        cli = subprocess.Popen(
            ["coderunner", "exec", "-c", CODE],
            env=env,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert cli.stdout.readline() == "go\n"
        events: list[dict] = []
        started = threading.Event()

        def stream() -> None:
            with CodeRunner() as client, client.stream(CODE) as evs:
                for event in evs:
                    events.append(event)
                    if event.get("type") == "stdout":
                        started.set()

        reader = threading.Thread(target=stream, daemon=True)
        reader.start()
        assert started.wait(60), events
        t0 = time.monotonic()
        cr(env, "down", check=0, timeout=60)
        reader.join(30)
        out, err = cli.communicate(timeout=30)
        assert time.monotonic() - t0 < 30
        done = [e for e in events if e.get("type") == "done"]
        assert done and done[0]["status"] == "died", events
        assert cli.returncode == 137, (cli.returncode, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("coderunner: ") and "shut down" in lines[0], err
        assert "shut down" in done[0]["message"]
    finally:
        cr(env, "down", "--remove", timeout=60)
