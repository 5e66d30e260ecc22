"""`sandbox_up.up` against a fake runtime: which of create, reuse, recreate, resume, build and pull it does.

The runtime is the only stand-in: an in-memory implementation of the ``Runtime``
protocol (``coderunner_cli/runtimes/base.py``) that records its calls. The gateway
it "starts" is a real HTTP server on loopback that answers ``/health`` and, with the
token the runtime handed it from the secrets dir, ``/v1/sessions``: so ``up``'s own
health and token checks run unchanged.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from coderunner_cli import paths, sandbox, sandbox_up, state
from coderunner_cli.errors import UsageError
from coderunner_cli.runtimes.base import DEFAULT_IMAGE, ContainerSpec, Status


class FakeGateway:
    """/health for anyone; /v1/sessions with the token it was started with."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.sessions: list[dict[str, Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/health":
                    return self.answer(200, {"status": "ok", "version": "fake", "sessions": len(gateway.sessions)})
                if self.headers.get("Authorization") != f"Bearer {gateway.token}":
                    return self.answer(401, {"error": {"code": "unauthorized", "message": "wrong token"}})
                if self.path == "/v1/sessions":
                    return self.answer(200, {"sessions": gateway.sessions})
                return self.answer(404, {"error": {"code": "not_found", "message": self.path}})

            def answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeRuntime:
    """The ``Runtime`` protocol in memory, its capabilities chosen per test. Not ``resumable``:
    its stop ends a sandbox for good (as ``local``'s does) and nothing is left to remove."""

    isolation = "nothing: a fake"

    def __init__(
        self,
        gateway: FakeGateway,
        *,
        name: str = "fake",
        resumable: bool = True,
        enforces_limits: bool = True,
        needs_image: bool = True,
        images=(),
    ) -> None:
        self.name = name
        self.resumable = resumable
        self.enforces_limits = enforces_limits
        self.needs_image = needs_image
        self.gateway = gateway
        self.images = set(images)
        self.containers: dict[str, str] = {}  # name -> running | stopped
        self.specs: list[ContainerSpec] = []
        self.calls: list[tuple] = []

    def _call(self, *call: Any) -> None:
        self.calls.append(call)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def problem(self) -> str | None:
        return None

    def prepare(self, timeout: float) -> None:
        self._call("prepare")

    def has_image(self, image: str) -> bool:
        self._call("has_image", image)
        return image in self.images

    def pull(self, image: str) -> None:
        self._call("pull", image)
        self.images.add(image)

    def build(self, tag: str, context: str, build_args: dict[str, str]) -> None:
        self._call("build", tag, context, build_args)
        self.images.add(tag)

    def status(self, name: str) -> Status:
        return Status(self.containers.get(name, "missing"))

    def create(self, spec: ContainerSpec) -> str:
        self._call("create", spec.name)
        assert spec.name not in self.containers, "create over an existing sandbox"
        self.specs.append(spec)
        self.containers[spec.name] = "running"
        # what a real runtime hands the gateway: the token file in the secrets dir
        self.gateway.token = (spec.secrets_dir / "token").read_text().strip()
        return self.gateway.url

    def resume(self, name: str) -> str:
        self._call("resume", name)
        assert self.resumable and self.containers[name] == "stopped"
        self.containers[name] = "running"
        return self.gateway.url

    def stop(self, name: str, timeout: float) -> None:
        self._call("stop", name)
        if self.resumable:
            self.containers[name] = "stopped"
        else:
            self.containers.pop(name, None)

    def remove(self, name: str) -> None:
        self._call("remove", name)
        self.containers.pop(name, None)

    def logs(self, name: str, follow: bool, tail: int | None) -> int:
        return 0

    def exec_interactive(self, name: str, argv: list[str]) -> int:
        return 0


@pytest.fixture(scope="module")
def gateway_server():
    gw = FakeGateway()
    yield gw
    gw.close()


@pytest.fixture
def gateway(gateway_server):
    """One server for the module (a shutdown waits for its poll), as fresh as a new one for each test."""
    gateway_server.token = None
    gateway_server.sessions = []
    return gateway_server


@pytest.fixture
def runtimes(monkeypatch):
    """Install fake runtimes where `up` looks runtimes up (by name, or the one chosen)."""
    installed: dict[str, FakeRuntime] = {}

    def get(name: str, sandbox_name: str | None = None) -> FakeRuntime:
        if name not in installed:
            raise UsageError(f"unknown runtime {name!r}")
        return installed[name]

    def resolve(flag: str | None = None) -> tuple[FakeRuntime, str]:
        return (get(flag), "--runtime") if flag else (next(iter(installed.values())), "auto-detected")

    # wherever the lifecycle code looks them up: the runtimes package, and any module that imported them
    import coderunner_cli.runtimes as registry

    real = {"get": registry.get, "resolve": registry.resolve}
    for module in [m for name, m in sys.modules.items() if name.startswith("coderunner_cli") and m is not None]:
        for attr, fake_fn in (("get", get), ("resolve", resolve)):
            if getattr(module, attr, None) is real[attr]:
                monkeypatch.setattr(module, attr, fake_fn)
    assert sandbox_up.get is get and sandbox_up.resolve is resolve

    def add(runtime: FakeRuntime) -> FakeRuntime:
        installed[runtime.name] = runtime
        return runtime

    return add


@pytest.fixture
def fake(runtimes, gateway) -> FakeRuntime:
    return runtimes(FakeRuntime(gateway, images=[DEFAULT_IMAGE]))


def up(**kw: Any) -> sandbox_up.UpResult:
    kw.setdefault("timeout", 5)
    return sandbox_up.up(sandbox_up.UpOptions(**kw))


def token() -> str:
    return paths.token_file().read_text().strip()


# -- a fresh up ------------------------------------------------------------------
def test_a_fresh_up_creates_the_sandbox_with_a_private_token(fake, gateway):
    said: list[str] = []
    r = sandbox_up.up(sandbox_up.UpOptions(runtime="fake", cpus=2, memory="1g", timeout=5), said.append)
    assert (r.action, r.url, r.runtime, r.source, r.isolation) == (
        "started",
        gateway.url,
        "fake",
        "--runtime",
        fake.isolation,
    )
    assert fake.names() == ["prepare", "has_image", "create"]
    (spec,) = fake.specs
    assert (spec.name, spec.image, spec.cpus, spec.memory, spec.network) == ("coderunner", DEFAULT_IMAGE, 2, "1g", True)
    assert spec.workspace == paths.workspace() and spec.workspace.is_dir()
    assert spec.env_file is None and not paths.env_file().exists()
    assert stat.S_IMODE(os.stat(paths.token_file()).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths.secrets_dir()).st_mode) == 0o700
    assert gateway.token == token() and len(token()) >= 32
    saved = state.load()
    assert (saved.runtime, saved.name, saved.url, saved.image) == ("fake", "coderunner", gateway.url, DEFAULT_IMAGE)
    assert saved.options["cpus"] == 2 and saved.options["workspace"] == str(paths.workspace())
    assert token() not in paths.state_file().read_text(), "the state file never holds the token"
    assert "waiting for the gateway" in said


def test_the_default_image_is_built_from_the_checkout_when_missing(runtimes, gateway):
    fake = runtimes(FakeRuntime(gateway))
    up(runtime="fake")
    assert ("build", DEFAULT_IMAGE, str(sandbox.image_context()), {}) in fake.calls
    assert (Path(sandbox.image_context()) / "Dockerfile").is_file()
    assert "pull" not in fake.names()


def test_another_image_is_pulled_when_missing(runtimes, gateway):
    fake = runtimes(FakeRuntime(gateway))
    up(runtime="fake", image="example.org/other:1")
    assert ("pull", "example.org/other:1") in fake.calls and "build" not in fake.names()
    assert fake.specs[0].image == "example.org/other:1"


def test_an_image_that_is_there_is_neither_built_nor_pulled(fake):
    up(runtime="fake")
    assert "build" not in fake.names() and "pull" not in fake.names()


def test_the_environment_goes_to_a_private_env_file(fake, tmp_path):
    paths.config_file().write_text("API_KEY=sk-123\nCODERUNNER_RUNTIME=fake\n")
    extra = tmp_path / "extra.env"
    extra.write_text("OTHER='two words'\n")
    up(runtime="fake", env_files=[extra])
    (spec,) = fake.specs
    assert spec.env_file == paths.env_file()
    assert stat.S_IMODE(os.stat(spec.env_file).st_mode) == 0o600
    from coderunner_cli import config

    assert config.read_file(spec.env_file) == {"API_KEY": "sk-123", "OTHER": "two words"}, "not CODERUNNER_*"
    assert "sk-123" not in paths.state_file().read_text(), "the state records a digest, never values"


# -- up again ----------------------------------------------------------------------
def test_up_again_with_the_same_options_reuses_the_sandbox(fake, gateway):
    first = up(runtime="fake", cpus=2)
    before, calls = token(), len(fake.calls)
    again = up(runtime="fake", cpus=2)
    assert (again.action, again.url, again.source) == ("already running", first.url, "state")
    assert fake.calls[calls:] == [] and token() == before and len(fake.specs) == 1


def test_options_left_out_keep_what_the_sandbox_was_started_with(fake):
    up(runtime="fake", cpus=2, memory="2g")
    r = up(cpus=None, memory=None, given=set())
    assert r.action == "already running" and len(fake.specs) == 1
    r = up(cpus=None, memory=None, given={"cpus"})
    assert r.action == "recreated" and fake.specs[-1].cpus is None and fake.specs[-1].memory == "2g"


def test_a_changed_option_recreates_it_keeping_the_workspace(fake, gateway):
    up(runtime="fake", cpus=2)
    (paths.workspace() / "keep.txt").write_text("mine")
    old_token, calls = token(), len(fake.calls)
    r = up(runtime="fake", cpus=4)
    assert r.action == "recreated"
    assert any("--cpus" in n for n in r.notes)
    assert fake.names()[calls:] == ["stop", "remove", "prepare", "has_image", "create"]
    assert fake.specs[-1].cpus == 4 and state.load().options["cpus"] == 4
    assert token() != old_token and gateway.token == token(), "a new sandbox gets a fresh token"
    assert (paths.workspace() / "keep.txt").read_text() == "mine"


def test_a_changed_environment_recreates_it(fake):
    up(runtime="fake")
    paths.config_file().write_text("API_KEY=new\n")
    r = up(runtime="fake")
    assert r.action == "recreated" and any("environment" in n for n in r.notes)


def test_recreating_live_sessions_is_refused_without_recreate(fake, gateway):
    up(runtime="fake", cpus=2)
    gateway.sessions = [{"session_id": "s1"}, {"session_id": "s2"}]
    calls = len(fake.calls)
    with pytest.raises(UsageError) as exc:
        up(runtime="fake", cpus=4)
    assert exc.value.exit_code == 2
    assert (
        "2 live sessions" in exc.value.message and "--recreate" in exc.value.message and "--cpus" in exc.value.message
    )
    assert fake.calls[calls:] == [] and fake.containers == {"coderunner": "running"}
    assert state.load().options["cpus"] == 2
    r = up(runtime="fake", cpus=4, recreate=True)
    assert r.action == "recreated" and fake.specs[-1].cpus == 4


def test_recreate_alone_recreates_a_healthy_sandbox(fake):
    up(runtime="fake")
    r = up(runtime="fake", recreate=True)
    assert r.action == "recreated" and any("--recreate" in n for n in r.notes) and len(fake.specs) == 2


# -- a stopped sandbox -----------------------------------------------------------
def test_a_stopped_sandbox_is_resumed_with_its_token(fake, gateway):
    up(runtime="fake")
    fake.containers["coderunner"] = "stopped"
    before, calls = token(), len(fake.calls)
    r = up()
    assert (r.action, r.url) == ("resumed", gateway.url)
    assert fake.calls[calls:] == [("resume", "coderunner")]
    assert token() == before and len(fake.specs) == 1


def test_a_stopped_sandbox_with_changed_options_is_recreated_not_resumed(fake):
    up(runtime="fake", memory="1g")
    fake.containers["coderunner"] = "stopped"
    calls = len(fake.calls)
    r = up(runtime="fake", memory="2g")
    assert r.action == "recreated" and "resume" not in fake.names()[calls:]
    assert fake.names()[calls:] == ["prepare", "has_image", "stop", "remove", "create"]
    assert fake.containers == {"coderunner": "running"} and fake.specs[-1].memory == "2g"


def test_a_runtime_that_cannot_resume_starts_again_and_never_removes(runtimes, gateway):
    procs = runtimes(FakeRuntime(gateway, name="procs", resumable=False, images=[DEFAULT_IMAGE]))
    up(runtime="procs")
    procs.containers["coderunner"] = "stopped"
    calls = len(procs.calls)
    r = up()
    assert r.action == "started" and len(procs.specs) == 2
    assert "resume" not in procs.names() and "remove" not in procs.names()[calls:]
    (paths.workspace() / "keep.txt").write_text("mine")
    r = up(recreate=True)
    assert r.action == "recreated" and "remove" not in procs.names(), "what it would remove is the workspace"
    assert (paths.workspace() / "keep.txt").exists()


def test_limits_a_runtime_cannot_enforce_are_said(runtimes, gateway):
    loose = runtimes(FakeRuntime(gateway, name="loose", enforces_limits=False, images=[DEFAULT_IMAGE]))
    assert up(runtime="loose").warnings == [], "no limits asked, nothing to say"
    r = up(runtime="loose", cpus=2)
    assert len(r.warnings) == 1 and "loose runtime cannot enforce --cpus/--memory" in r.warnings[0]
    assert loose.specs[-1].cpus == 2, "the option is still recorded and passed"


def test_a_runtime_that_enforces_limits_gets_no_warning(fake):
    assert up(runtime="fake", cpus=2, memory="1g").warnings == []


def test_a_runtime_without_images_never_builds_nor_pulls(runtimes, gateway):
    bare = runtimes(FakeRuntime(gateway, name="bare", needs_image=False))
    up(runtime="bare", image="example.org/other:1")
    assert bare.names() == ["prepare", "create"]


def test_the_fake_implements_the_whole_runtime_protocol(gateway):
    from coderunner_cli.runtimes.base import Runtime

    members = set(getattr(Runtime, "__annotations__", {})) | {
        n for n, v in vars(Runtime).items() if callable(v) and not n.startswith("_")
    }
    fake = FakeRuntime(gateway)
    missing = sorted(n for n in members if not hasattr(fake, n))
    assert not missing, f"the Runtime protocol grew {missing}: teach FakeRuntime"


def test_a_running_sandbox_of_another_runtime_must_be_downed_first(runtimes, gateway):
    fake = runtimes(FakeRuntime(gateway, images=[DEFAULT_IMAGE]))
    other = runtimes(FakeRuntime(gateway, name="other", images=[DEFAULT_IMAGE]))
    up(runtime="fake")
    with pytest.raises(UsageError, match="a fake sandbox is running: stop it with `coderunner down`"):
        up(runtime="other")
    assert other.calls == [] and fake.containers == {"coderunner": "running"}


def test_a_named_sandbox_has_its_own_container_and_state(fake):
    up(runtime="fake")
    paths.use_sandbox("b")
    r = up(runtime="fake")
    assert r.action == "started"
    assert [s.name for s in fake.specs] == ["coderunner", "coderunner-b"]
    assert fake.specs[1].workspace == paths.workspace("b") != paths.workspace("default")
    assert state.load("b").name == "coderunner-b" and state.load("default").name == "coderunner"
