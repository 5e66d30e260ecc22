"""The gateway's routes in-process: ``create_app`` through ``httpx.ASGITransport``, its lifespan
run over the ASGI lifespan protocol (as uvicorn runs it), no kernel and no browser started.

One app serves the whole module, on an event loop in a thread of its own (the lifespan's
task group must enter and exit in one task); each request is sent to that loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from coderunner_gateway.app import create_app
from coderunner_gateway.jail import JailConfig, make_jail
from coderunner_gateway.settings import Settings

TOKEN = "unit-test-token"
MAX_REQUEST = 256 * 1024


class Api:
    def __init__(self, app: Any, workspace: Path) -> None:
        self.app = app
        self.workspace = workspace
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self._start())

    def _call(self, coro: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False), base_url="http://127.0.0.1"
        )
        self._to_app: asyncio.Queue = asyncio.Queue()
        self._from_app: asyncio.Queue = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.ensure_future(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        assert message["type"] == "lifespan.startup.complete", message

    async def _stop(self) -> None:
        await self.client.aclose()
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._from_app.get()
        assert message["type"] == "lifespan.shutdown.complete", message
        await self._lifespan

    def close(self) -> None:
        try:
            self._call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    def request(self, method: str, path: str, *, token: str | None = TOKEN, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return self._call(self.client.request(method, path, headers=headers, **kw))

    def error(self, method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
        """The error body, having checked the status and that it is our JSON error shape."""
        r = self.request(method, path, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        err = r.json()["error"]
        assert set(err) == {"code", "message"} and err["message"]
        return err


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    base = tmp_path_factory.mktemp("gw")
    workspace, runtime_dir, skills = base / "workspace", base / "run", base / "skills"
    for d in (workspace, runtime_dir, skills / "demo"):
        d.mkdir(parents=True)
    (skills / "demo" / "SKILL.md").write_text("---\nname: demo\ndescription: A demo\n---\nUse it.\n")
    (skills / "demo" / "notes.txt").write_text("notes")
    (base / "secret.txt").write_text("outside")
    (skills / "demo" / "leak.txt").symlink_to(base / "secret.txt")
    with zipfile.ZipFile(skills / "zipped.zip", "w") as zf:
        zf.writestr("zipped/SKILL.md", "---\nname: zipped\ndescription: From a zip\n---\nbody\n")
    with zipfile.ZipFile(skills / "evil.zip", "w") as zf:
        zf.writestr("SKILL.md", "---\nname: evil\ndescription: d\n---\n")
        zf.writestr("../../escaped.txt", "x")
    jail = make_jail(JailConfig(mode="none", runtime_dir=str(runtime_dir), workspace=str(workspace)))
    settings = Settings(
        workspace=str(workspace),
        token=TOKEN,
        pool_size=0,
        script_pool=0,
        max_request_bytes=MAX_REQUEST,
        skills_dir=str(base / "no-public-skills"),
        user_skills_dir=str(skills),
        runtime_dir=str(runtime_dir),
        jail=jail,
    )
    app, _gateway = create_app(settings)
    api = Api(app, workspace)
    yield api
    api.close()


# every route but /health, with a method it answers
ROUTES = [
    ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/session"),
    ("POST", "/v1/sessions/session"),
    ("DELETE", "/v1/sessions/session"),
    ("GET", "/v1/sessions/s1"),
    ("DELETE", "/v1/sessions/s1"),
    ("POST", "/v1/sessions/s1/interrupt"),
    ("POST", "/v1/sessions/s1/restart"),
    ("POST", "/v1/execute"),
    ("POST", "/execute"),
    ("POST", "/v1/browser/navigate"),
    ("POST", "/v1/browser/content"),
    ("POST", "/v1/browser/screenshot"),
    ("POST", "/v1/browser/interactions/navigate"),
    ("POST", "/v1/browser/interactions/content"),
    ("GET", "/v1/skills"),
    ("GET", "/v1/skills/demo"),
    ("GET", "/v1/skills/demo/files/notes.txt"),
    ("GET", "/v1/files"),
    ("GET", "/v1/files/a.txt"),
    ("PUT", "/v1/files/a.txt"),
    ("DELETE", "/v1/files/a.txt"),
    ("POST", "/mcp"),
    ("GET", "/mcp/"),
    ("GET", "/no/such/route"),
]


# -- auth -------------------------------------------------------------------------
def test_every_route_but_health_needs_the_token(api):
    body = json.dumps({"code": "print(1)", "url": "http://example.com"})
    for method, path in ROUTES:
        for token, says in ((None, "missing or wrong token"), ("wrong", "wrong token"), ("", "missing")):
            r = api.request(method, path, token=token, content=body)
            assert r.status_code == 401, (method, path, token, r.status_code, r.text)
            assert r.json()["error"]["code"] == "unauthorized" and says in r.json()["error"]["message"]
            assert r.headers["www-authenticate"] == "Bearer"
    assert not (api.workspace / "a.txt").exists(), "a refused PUT wrote nothing"


def test_the_token_is_taken_as_bearer_or_x_api_key_and_compared_whole(api):
    assert api.request("GET", "/v1/sessions", headers={"Authorization": f"bearer  {TOKEN} "}).status_code == 200
    assert api.request("GET", "/v1/sessions", token=None, headers={"X-API-Key": TOKEN}).status_code == 200
    for given in (TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert api.request("GET", "/v1/sessions", token=given).status_code == 401
    r = api.request("GET", "/v1/sessions", token=None, headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401


def test_health_answers_without_a_token(api):
    r = api.request("GET", "/health", token=None)
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["auth"] is True and h["sessions"] == 0 and h["browser"] == "not started"
    assert h["warm_kernels"] == 0 and h["running_scripts"] == 0 and isinstance(h["version"], str)


def test_a_foreign_host_or_origin_is_refused_before_the_token(api):
    err = api.error("GET", "/health", 403, headers={"Host": "evil.example"})
    assert err["code"] == "host_not_allowed"
    err = api.error("GET", "/v1/sessions", 403, headers={"Origin": "https://evil.example"})
    assert err["code"] == "origin_not_allowed"
    assert api.request("GET", "/v1/sessions", headers={"Host": "localhost:8222"}).status_code == 200
    assert api.request("GET", "/v1/sessions", headers={"Origin": "http://127.0.0.1:3000"}).status_code == 200
    for host in ("127.0.0.1.evil.example", "localhost.evil.example", "127.0.0.1:99999", "", "[::1"):
        assert api.error("GET", "/health", 403, headers={"Host": host})["code"] == "host_not_allowed", host
    for host in ("[::1]:8222", "10.1.2.3", "localhost."):
        assert api.request("GET", "/health", headers={"Host": host}).status_code == 200, host
    for origin in (
        "null",
        "http://localhost.evil.example",
        "http://127.0.0.1@evil.example",
        "file://",
        "http://10.0.0.1",
    ):
        err = api.error("GET", "/v1/sessions", 403, headers={"Origin": origin})
        assert err["code"] == "origin_not_allowed", origin


# -- errors ------------------------------------------------------------------------
def test_unknown_routes_and_methods_are_json_errors(api):
    err = api.error("GET", "/no/such/route", 404)
    assert err["code"] == "not_found" and "/no/such/route" in err["message"]
    assert api.error("GET", "/v1/execute", 405)["code"] == "method_not_allowed"
    assert api.error("PATCH", "/v1/files/a.txt", 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/v1/execute", "/execute", "/v1/sessions", "/v1/browser/navigate"])
@pytest.mark.parametrize("body", [b"{bad", b"[1]", b"\xff"])
def test_a_body_that_is_not_a_json_object_is_400_invalid_json(api, path, body):
    assert api.error("POST", path, 400, content=body)["code"] == "invalid_json"


def test_execute_checks_its_fields_before_running_anything(api):
    cases = [
        ({}, "invalid_field"),
        ({"code": "  \n"}, "empty_code"),
        ({"code": "1", "timeout": -1}, "invalid_field"),
        ({"code": "1", "tiemout": 5}, "invalid_field"),
        ({"code": "1", "language": "ruby"}, "unknown_language"),
        ({"code": "1", "stdin": "a", "stdin_b64": "YQ=="}, "invalid_field"),
        ({"code": "1", "stdin_b64": "not base64!"}, "invalid_field"),
        ({"code": "1", "cwd": "../up"}, "invalid_cwd"),
        ({"code": "1", "cwd": "missing-dir"}, "invalid_cwd"),
        ({"code": "\ud800"}, "invalid_unicode"),
    ]
    for body, code in cases:
        err = api.error("POST", "/v1/execute", 400, content=json.dumps(body))
        assert err["code"] == code, (body, err)
    assert api.request("GET", "/health").json()["running_scripts"] == 0


def test_a_body_over_the_limit_is_413(api):
    big = json.dumps({"code": "x" * MAX_REQUEST})
    assert api.error("POST", "/v1/execute", 413, content=big)["code"] == "payload_too_large"
    assert api.error("PUT", "/v1/files/big.bin", 413, content=b"x" * (MAX_REQUEST + 1))["code"] == "payload_too_large"
    assert not (api.workspace / "big.bin").exists()


# -- sessions ----------------------------------------------------------------------
def test_an_unknown_session_is_404_session_not_found_everywhere(api):
    for method, path, body in [
        ("GET", "/v1/sessions/nope", None),
        ("DELETE", "/v1/sessions/nope", None),
        ("POST", "/v1/sessions/nope/interrupt", None),
        ("POST", "/v1/sessions/nope/restart", None),
        ("GET", "/v1/sessions/session?session_id=nope", None),
        ("POST", "/v1/execute", {"code": "1", "session_id": "nope"}),
        ("POST", "/v1/browser/navigate", {"url": "http://example.com", "session_id": "nope"}),
    ]:
        err = api.error(method, path, 404, content=None if body is None else json.dumps(body))
        assert err["code"] == "session_not_found", (method, path, err)
        assert "'nope'" in err["message"]
    assert api.request("GET", "/v1/sessions").json() == {"sessions": []}


def test_session_names_are_checked_before_a_kernel_starts(api):
    for body in ({"name": ""}, {"name": "a\x00b"}, {"name": "x" * 256}, {"language": "ruby"}, {"nmae": "x"}):
        r = api.request("POST", "/v1/sessions", content=json.dumps(body))
        assert r.status_code == 400, (body, r.text)
    assert api.request("GET", "/v1/sessions").json() == {"sessions": []}


# -- browser (refused before Chromium starts) ------------------------------------------
@pytest.mark.parametrize("url", ["file:///etc/passwd", "chrome://settings", "javascript:alert(1)"])
def test_the_browser_refuses_other_schemes(api, url):
    for path in ("/v1/browser/navigate", "/v1/browser/content", "/v1/browser/interactions/navigate"):
        assert api.error("POST", path, 400, content=json.dumps({"url": url}))["code"] == "unsupported_scheme"
    assert api.request("GET", "/health").json()["browser"] == "not started"


# -- skills ------------------------------------------------------------------------
def test_skills_are_listed_and_their_files_confined(api):
    skills = api.request("GET", "/v1/skills").json()["skills"]
    assert sorted((s["name"], s["source"]) for s in skills) == [("demo", "user"), ("zipped", "user")]
    assert not list(api.workspace.parent.rglob("escaped.txt")), "a zip with ../ is not unpacked"
    detail = api.request("GET", "/v1/skills/demo").json()
    assert detail["instructions"] == "Use it.\n" and detail["files"] == ["SKILL.md", "notes.txt"]
    assert api.request("GET", "/v1/skills/demo/files/notes.txt").text == "notes"
    assert api.request("GET", "/v1/skills/zipped").json()["instructions"] == "body\n"
    assert api.error("GET", "/v1/skills/nope", 404)["code"] == "skill_not_found"
    assert api.error("GET", "/v1/skills/evil", 404)["code"] == "skill_not_found"
    assert api.error("GET", "/v1/skills/demo/files/missing.txt", 404)["code"] == "file_not_found"
    for path in ("%2E%2E/%2E%2E/secret.txt", "leak.txt"):
        err = api.error("GET", f"/v1/skills/demo/files/{path}", 403)
        assert err["code"] == "path_outside_skill", path


# -- files ------------------------------------------------------------------------
def test_files_round_trip_in_the_workspace(api):
    r = api.request("PUT", "/v1/files/dir/a.bin", content=b"\x00\xffdata")
    assert r.status_code == 201 and r.json() == {"path": "dir/a.bin", "size": 6}
    assert (api.workspace / "dir" / "a.bin").read_bytes() == b"\x00\xffdata"
    assert api.request("GET", "/v1/files/dir/a.bin").content == b"\x00\xffdata"
    listing = api.request("GET", "/v1/files/dir").json()
    assert listing["path"] == "dir" and [(e["name"], e["type"], e["size"]) for e in listing["entries"]] == [
        ("a.bin", "file", 6)
    ]
    assert "dir" in [e["name"] for e in api.request("GET", "/v1/files").json()["entries"]]
    assert api.error("DELETE", "/v1/files/dir", 409)["code"] == "directory_not_empty"
    assert api.request("DELETE", "/v1/files/dir/a.bin").json() == {"deleted": "dir/a.bin"}
    assert api.error("GET", "/v1/files/dir/a.bin", 404)["code"] == "file_not_found"
    assert api.error("DELETE", "/v1/files/dir/a.bin", 404)["code"] == "file_not_found"
    assert api.request("DELETE", "/v1/files/dir").status_code == 200 and not (api.workspace / "dir").exists()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "path", ["%2E%2E/secret.txt", "a/%2e%2e/%2e%2e/secret.txt", "..%2Fsecret.txt", "link-out/secret.txt"]
)
def test_files_cannot_leave_the_workspace(api, method, path):
    link = api.workspace / "link-out"
    if not link.is_symlink():
        link.symlink_to(api.workspace.parent)
    err = api.error(method, f"/v1/files/{path}", 403, content=b"overwritten" if method == "PUT" else None)
    assert err["code"] == "path_outside_workspace"
    assert (api.workspace.parent / "secret.txt").read_text() == "outside"


def test_absolute_paths_and_the_workspace_itself_are_refused(api):
    assert api.error("GET", "/v1/files//etc/passwd", 400)["code"] == "invalid_path"
    assert api.error("PUT", "/v1/files/a%00b", 400, content=b"x")["code"] == "invalid_path"
    assert api.error("PUT", "/v1/files/" + "n" * 256, 400, content=b"x")["code"] == "invalid_path"
    assert api.error("DELETE", "/v1/files/", 403)["code"] == "forbidden"
    assert api.workspace.is_dir()


# -- bugs found here, fixed: each ends in expect(), a failure without a traceback --------------
def expect(ok: bool, what: str) -> None:
    if not ok:
        pytest.fail(what, pytrace=False)


@pytest.mark.parametrize("url", ["http://[::1", "http://[not-an-ip]/", "http://x:99999/"])
def test_a_malformed_bracketed_host_is_400_not_500(api, url):
    # urlsplit raises ValueError for these; check_url turns it into the README's 400 invalid_url
    r = api.request("POST", "/v1/browser/navigate", content=json.dumps({"url": url}))
    expect(r.status_code == 400 and r.json()["error"]["code"] == "invalid_url", r.text)


@pytest.mark.parametrize("name", ["n" * 240, "n" * 255, "\u00e9" * 127 + "n"])  # 255 bytes in UTF-8 too
def test_a_file_name_of_255_bytes_is_written_and_read_back(api, name):
    # files.write's temp name once grew with the name: past 239 bytes it hit NAME_MAX, a 500
    try:
        r = api.request("PUT", f"/v1/files/{name}", content=b"x")
        expect(r.status_code == 201 and (api.workspace / name).read_bytes() == b"x", r.text)
        expect(api.request("GET", f"/v1/files/{name}").content == b"x", "read back")
        expect([p.name for p in api.workspace.iterdir() if "coderunner-tmp" in p.name] == [], "temp file left")
    finally:
        (api.workspace / name).unlink(missing_ok=True)


@pytest.mark.parametrize("under", ["plain/child", "plain/deeper/child"])
def test_a_file_in_the_way_of_a_folder_is_a_409(api, under):
    # mkdir's FileExistsError/NotADirectoryError once escaped as a 500
    assert api.request("PUT", "/v1/files/plain", content=b"x").status_code == 201
    try:
        r = api.request("PUT", f"/v1/files/{under}", content=b"y")
        err = r.json()["error"]
        expect(r.status_code == 409 and err["code"] == "not_a_directory", r.text)
        expect(err["message"].startswith("'plain' is a file, not a folder") and "\n" not in err["message"], r.text)
        expect((api.workspace / "plain").read_bytes() == b"x", "the file in the way was changed")
    finally:
        (api.workspace / "plain").unlink()


def test_deleting_a_link_deletes_the_link_not_its_target(api):
    # DELETE once resolved the link and deleted its target, leaving the link dangling
    (api.workspace / "target.txt").write_text("keep me")
    (api.workspace / "alias.txt").symlink_to(api.workspace / "target.txt")
    try:
        assert api.request("DELETE", "/v1/files/alias.txt").json() == {"deleted": "alias.txt"}
        link_gone = not (api.workspace / "alias.txt").is_symlink()
        target_kept = (api.workspace / "target.txt").exists()
        expect(link_gone and target_kept, f"link gone: {link_gone}, target kept: {target_kept}")
    finally:
        for p in (api.workspace / "alias.txt", api.workspace / "target.txt"):
            p.unlink(missing_ok=True)


def test_deleting_links_to_folders_dangling_or_out_deletes_only_the_link(api):
    outside = api.workspace.parent / "outside-dir"
    outside.mkdir(exist_ok=True)
    (outside / "kept.txt").write_text("kept")
    (api.workspace / "real-dir").mkdir()
    links = {"to-dir": api.workspace / "real-dir", "dangling": api.workspace / "nothing", "to-outside": outside}
    try:
        for name, target in links.items():
            (api.workspace / name).symlink_to(target)
            for path in (name, f"{name}/"):
                if not (api.workspace / name).is_symlink():
                    (api.workspace / name).symlink_to(target)
                r = api.request("DELETE", f"/v1/files/{path}")
                expect(r.status_code == 200 and not (api.workspace / name).is_symlink(), f"{path}: {r.text}")
        expect((api.workspace / "real-dir").is_dir() and (outside / "kept.txt").exists(), "a target was deleted")
        # through a link out, nothing is deleted
        (api.workspace / "to-outside").symlink_to(outside)
        expect(api.error("DELETE", "/v1/files/to-outside/kept.txt", 403)["code"] == "path_outside_workspace", "403")
        expect((outside / "kept.txt").exists(), "deleted through a link out")
    finally:
        for name in links:
            (api.workspace / name).unlink(missing_ok=True)
        (api.workspace / "real-dir").rmdir()


def test_a_folder_swapped_for_a_link_after_resolving_is_not_followed(tmp_path):
    # files.remove opens the folder a name at a time without following links: code that swaps a
    # resolved folder for a link out between the check and the delete gets a 409, nothing deleted
    from coderunner_gateway import files
    from coderunner_gateway.errors import ApiError

    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "victim.txt").write_text("kept")
    entry = files.resolve_entry(str(root), "sub/victim.txt")
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside)  # the swap
    with pytest.raises(ApiError) as exc:
        files.remove(entry, root.resolve())
    assert exc.value.status == 409 and (outside / "victim.txt").read_text() == "kept"
