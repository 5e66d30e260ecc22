"""The copy of the host's /etc that bwrap cells bind (etc_view.py), on a folder standing in
for /etc: what is copied, and that a change on the host reaches the cells started after it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from coderunner_gateway.etc_view import EtcView


def host(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    (etc / "ssl" / "certs").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "machine-id").write_text("secret\n")
    (etc / "ssl" / "certs" / "bundle.crt").write_text("CERTS\n")
    (etc / "ssl" / "certs" / "abc.0").symlink_to("/usr/share/ca-certificates/abc.crt")  # dangling here
    (tmp_path / "real-resolv").write_text("nameserver 10.0.0.1\n")
    (etc / "resolv.conf").symlink_to(tmp_path / "real-resolv")  # a target the cell cannot see
    return etc


def test_only_the_allowlisted_entries_links_kept_inside_followed_at_the_top(tmp_path):
    etc = host(tmp_path)
    view = Path(EtcView(str(tmp_path / "view"), ["passwd", "ssl/certs", "resolv.conf", "missing"], str(etc)).path())
    assert sorted(p.name for p in view.iterdir()) == ["passwd", "resolv.conf", "ssl"]
    assert (view / "passwd").read_text() == (etc / "passwd").read_text()
    assert not (view / "resolv.conf").is_symlink() and (view / "resolv.conf").read_text() == "nameserver 10.0.0.1\n"
    assert os.readlink(view / "ssl" / "certs" / "abc.0") == "/usr/share/ca-certificates/abc.crt"
    assert (view / "ssl" / "certs" / "bundle.crt").read_text() == "CERTS\n"
    assert oct(view.stat().st_mode & 0o777) == oct(0o755)


def test_a_change_on_the_host_makes_a_new_copy_and_old_ones_go(tmp_path):
    etc = host(tmp_path)
    ev = EtcView(str(tmp_path / "view"), ["passwd", "ssl/certs", "resolv.conf"], str(etc), recheck=0)
    first = ev.path()
    assert ev.path() == first, "nothing changed: the same copy"
    (tmp_path / "real-resolv").write_text("nameserver 10.9.9.9\n")  # a link's target rewritten
    second = ev.path()
    assert second != first and Path(second, "resolv.conf").read_text() == "nameserver 10.9.9.9\n"
    (etc / "ssl" / "certs" / "new.0").symlink_to("x")  # an entry added deep inside
    third = ev.path()
    assert third != second and os.path.islink(Path(third, "ssl", "certs", "new.0"))
    assert not os.path.exists(first) and os.path.exists(second), "the copy before the newest is kept"


def test_changes_are_looked_for_at_most_every_recheck_seconds(tmp_path):
    etc = host(tmp_path)
    ev = EtcView(str(tmp_path / "view"), ["passwd"], str(etc), recheck=0.3)
    first = ev.path()
    (etc / "passwd").write_text("changed\n")
    assert ev.path() == first
    time.sleep(0.35)
    assert Path(ev.path(), "passwd").read_text() == "changed\n"
