"""Auth, health, bad input, legacy aliases and workspace files."""

from __future__ import annotations

import httpx
import pytest


def test_health_is_open_and_informative(gateway):
    r = httpx.get(gateway.url + "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["auth"] is True
    assert body["version"] == "0.1.0"
    assert body["uptime"] > 0
    assert {"sessions", "warm_kernels"} <= body.keys()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/execute"),
        ("GET", "/v1/sessions"),
        ("POST", "/v1/sessions"),
        ("GET", "/v1/sessions/x"),
        ("DELETE", "/v1/sessions/x"),
        ("POST", "/execute"),
        ("GET", "/v1/files/a.txt"),
        ("GET", "/no/such/route"),
    ],
)
def test_every_route_but_health_needs_the_token(gateway, method, path):
    r = httpx.request(method, gateway.url + path, json={"code": "print(1)"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "Bearer" in r.json()["error"]["message"]
    r = httpx.request(
        method,
        gateway.url + path,
        json={"code": "print(1)"},
        headers={"Authorization": "Bearer wrong-" + gateway.token},
    )
    assert r.status_code == 401


def test_bearer_and_x_api_key_both_work(gateway):
    body = {"code": "print(2)"}
    r = httpx.post(gateway.url + "/v1/execute", json=body, headers={"Authorization": f"Bearer {gateway.token}"})
    assert r.json()["stdout"] == "2\n"
    r = httpx.post(gateway.url + "/v1/execute", json=body, headers={"X-API-Key": gateway.token})
    assert r.json()["stdout"] == "2\n"
    r = httpx.post(gateway.url + "/v1/execute", json=body, headers={"X-API-Key": gateway.token[:-1]})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b'"just a string"', 400, "invalid_json"),
        (b'{"code": 5}', 400, "invalid_field"),
        (b'{"code": "1", "timeout": "soon"}', 400, "invalid_field"),
        (b'{"code": "1", "timeout": -1}', 400, "invalid_field"),
        (b'{"code": "1", "timeout": true}', 400, "invalid_field"),
        (b'{"code": "1", "argv": "a b"}', 400, "invalid_field"),
        (b'{"code": "1", "argv": [1]}', 400, "invalid_field"),
        (b'{"code": "1", "env": {"A": 1}}', 400, "invalid_field"),
        (b'{"code": "1", "stdin": 3}', 400, "invalid_field"),
        (b'{"code": "1", "sesion_id": "typo"}', 400, "invalid_field"),
        (b'{"code": "1", "language": "cobol"}', 400, "unknown_language"),
        (b'{"code": "   \\n"}', 400, "empty_code"),
        (b'{"code": ""}', 400, "empty_code"),
        (b"{}", 400, "invalid_field"),
        (b'{"code": "1", "session_id": "s-nope"}', 404, "session_not_found"),
        (b'{"code": "1", "session_id": ""}', 400, "invalid_field"),
        (b"\xff\xfe", 400, "invalid_json"),
    ],
)
def test_bad_execute_input_is_a_clear_4xx(gateway, body, status, code):
    r = gateway.client().post("/v1/execute", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"]


def test_script_only_fields_are_refused_for_sessions(gateway):
    sid = gateway.new_session(language="bash")
    r = gateway.client().post("/v1/execute", json={"code": "echo", "session_id": sid, "argv": ["x"]})
    assert r.status_code == 400 and "argv" in r.json()["error"]["message"]
    r = gateway.client().post("/v1/execute", json={"code": "1", "session_id": sid, "language": "python"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "language_mismatch"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/sessions", {"language": "ruby"}, 400),
        ("POST", "/v1/sessions", {"name": 7}, 400),
        ("POST", "/v1/sessions", {"nmae": "x"}, 400),
        ("GET", "/v1/sessions/s-missing", None, 404),
        ("DELETE", "/v1/sessions/s-missing", None, 404),
        ("POST", "/v1/sessions/s-missing/interrupt", None, 404),
        ("POST", "/v1/sessions/s-missing/restart", None, 404),
        ("GET", "/v1/nothing-here", None, 404),
        ("PATCH", "/v1/execute", None, 405),
    ],
)
def test_other_bad_requests(gateway, method, path, body, status):
    r = gateway.client().request(method, path, json=body)
    assert r.status_code == status
    assert r.json()["error"]["message"]


@pytest.mark.parametrize(
    "path",
    ["/v1/browser/navigate", "/v1/browser/content", "/v1/browser/screenshot", "/v1/browser/interactions/content"],
)
@pytest.mark.parametrize("url", ["http://[::1", "http://[not-an-ip]/", "http://example.com:99999/"])
def test_a_malformed_url_is_400_invalid_url(gateway, path, url):
    # urlsplit raises ValueError for a malformed [IPv6] host or port: refused before the browser is used
    r = gateway.client().post(path, json={"url": url})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_url" and "not a valid URL" in r.json()["error"]["message"]


def test_request_size_is_bounded(gateway_factory):
    gw = gateway_factory("--max-request-bytes", "1000", "--pool-size", "0")
    r = gw.client().post("/v1/execute", json={"code": "x = '" + "a" * 2000 + "'"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunked():  # no Content-Length: the limit still holds
        for _ in range(10):
            yield b'{"code": "' + b"a" * 500

    r = gw.client().post("/v1/execute", content=chunked())
    assert r.status_code == 413


def test_legacy_execute_alias(gateway):
    r = gateway.client().post("/execute", json={"command": "print('old client')", "language": "python", "timeout": 10})
    assert r.status_code == 200
    assert r.headers["Deprecation"] == "true"
    body = r.json()
    assert body["stdout"] == "old client\n" and body["stderr"] == "" and "execution_time" in body


def test_legacy_session_alias(gateway):
    c = gateway.client()
    r = c.post("/v1/sessions/session", json={})
    assert r.status_code == 200 and r.headers["Deprecation"] == "true"
    sid = r.json()["session_id"]
    r = c.get("/v1/sessions/session", params={"session_id": sid})
    assert r.json()["session_id"] == sid and r.headers["Deprecation"] == "true"
    r = c.post("/execute", json={"command": "y = 5", "session_id": sid})
    assert gateway.execute("print(y)", session_id=sid)["stdout"] == "5\n"
    assert c.request("DELETE", "/v1/sessions/session", json={"session_id": sid}).status_code == 200
    assert c.get("/v1/sessions/session", params={"session_id": sid}).status_code == 404
    assert c.get("/v1/sessions/session").status_code == 400


def test_files_roundtrip_and_confinement(gateway):
    c = gateway.client()
    assert c.put("/v1/files/data/in.csv", content=b"a,b\n1,2\n").status_code == 201
    assert (gateway.workspace / "data" / "in.csv").read_bytes() == b"a,b\n1,2\n"
    assert c.get("/v1/files/data/in.csv").content == b"a,b\n1,2\n"
    r = gateway.execute("print(open('data/in.csv').read().splitlines()[1])")
    assert r["stdout"] == "1,2\n"
    names = [e["name"] for e in c.get("/v1/files/data").json()["entries"]]
    assert names == ["in.csv"]
    assert c.delete("/v1/files/data/in.csv").status_code == 200
    assert c.get("/v1/files/data/in.csv").status_code == 404
    (gateway.workspace / "escape").symlink_to("/etc")
    for path in ["/v1/files/../../etc/passwd", "/v1/files/%2e%2e/%2e%2e/etc/passwd", "/v1/files/escape/passwd"]:
        r = c.get(path)
        assert r.status_code in (403, 404), path
        assert b"root:" not in r.content
    r = c.put("/v1/files/escape/evil", content=b"x")
    assert r.status_code == 403


def test_a_file_name_of_255_bytes_round_trips(gateway):
    # NAME_MAX itself: the temp file the gateway writes first must not be longer
    c, name = gateway.client(), "\u00e9" * 127 + "n"
    assert len(name.encode()) == 255
    r = c.put(f"/v1/files/long/{name}", content=b"long")
    assert r.status_code == 201, r.text
    assert c.get(f"/v1/files/long/{name}").content == b"long"
    assert [e["name"] for e in c.get("/v1/files/long").json()["entries"]] == [name]
    assert gateway.execute("import os; print(len(os.listdir('long')[0].encode()))")["stdout"] == "255\n"
    assert c.delete(f"/v1/files/long/{name}").status_code == 200


def test_a_file_in_the_way_of_a_folder_is_a_409(gateway):
    c = gateway.client()
    assert c.put("/v1/files/in-the-way", content=b"x").status_code == 201
    for path in ["in-the-way/child", "in-the-way/a/b"]:
        r = c.put(f"/v1/files/{path}", content=b"y")
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "not_a_directory" and "'in-the-way' is a file, not a folder" in err["message"]
    assert c.get("/v1/files/in-the-way").content == b"x"


def test_deleting_a_link_deletes_the_link(gateway, tmp_path):
    # links made by code in the sandbox, as they would be: DELETE takes the link, never its target
    c = gateway.client()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.txt").write_text("kept")
    assert c.put("/v1/files/link-target.txt", content=b"keep me").status_code == 201
    code = f"import os; os.symlink('link-target.txt', 'link-alias.txt'); os.symlink({str(outside)!r}, 'link-out')"
    assert gateway.execute(code)["status"] == "ok"
    assert c.delete("/v1/files/link-alias.txt").json() == {"deleted": "link-alias.txt"}
    assert not (gateway.workspace / "link-alias.txt").is_symlink()
    assert c.get("/v1/files/link-target.txt").content == b"keep me"
    assert c.delete("/v1/files/link-out/kept.txt").status_code == 403  # through a link out: nothing
    assert c.delete("/v1/files/link-out").status_code == 200  # the link out itself: only the link
    assert not (gateway.workspace / "link-out").is_symlink() and (outside / "kept.txt").read_text() == "kept"


def test_code_can_change_what_was_uploaded(gateway):
    # a root gateway wrote uploads as root 0644/0755: code (another uid) could read them but
    # not change them, nor add a file to an uploaded folder
    c = gateway.client()
    assert c.put("/v1/files/up/deep/in.txt", content=b"one\n").status_code == 201
    code = (
        "open('up/deep/in.txt', 'a').write('two\\n')\n"
        "open('up/deep/new.txt', 'w').write('made')\n"
        "import os; os.mkdir('up/sub')\n"
        "print(open('up/deep/in.txt').read(), end='')"
    )
    r = gateway.execute(code)
    assert (r["exit_code"], r["stdout"]) == (0, "one\ntwo\n"), r["stderr"]
    ws = gateway.workspace.stat()
    for p in ("up", "up/deep", "up/deep/in.txt"):
        st = (gateway.workspace / p).stat()
        assert (st.st_uid, st.st_gid) == (ws.st_uid, ws.st_gid), p
