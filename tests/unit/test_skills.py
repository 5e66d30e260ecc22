"""parse_skill_md and unpack_zip: a SKILL.md's frontmatter, and zips unpacked without escaping their folder."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
from coderunner_gateway import skills
from coderunner_gateway.skills import parse_skill_md, unpack_zip

GOOD = "---\nname: pdf-tools\ndescription: Work with PDFs\nversion: 2\n---\n\n# Use\nrun it\n"


def test_frontmatter_and_body_are_split():
    meta, body = parse_skill_md(GOOD)
    assert meta == {"name": "pdf-tools", "description": "Work with PDFs", "version": 2}
    assert body == "# Use\nrun it\n"


def test_a_thematic_break_in_the_body_stays_in_the_body():
    meta, body = parse_skill_md("---\nname: a\ndescription: d\n---\nintro\n---\nmore\n")
    assert meta["name"] == "a" and body == "intro\n---\nmore\n"


@pytest.mark.parametrize(
    "text, says",
    [
        ("name: a\ndescription: d\n", "must start with YAML frontmatter"),
        ("---\nname: a\ndescription: d\n", "not closed"),
        ("---\n- a\n- b\n---\n", "must be a mapping"),
        ("---\nname: a\n---\n", "'description'"),
        ("---\nname: a\ndescription: '  '\n---\n", "'description'"),
        ("---\nname: 7\ndescription: d\n---\n", "'name'"),
        ("---\nname: ../etc\ndescription: d\n---\n", "skill name"),
        ("---\nname: a b\ndescription: d\n---\n", "skill name"),
        ("---\nname: " + "a" * 65 + "\ndescription: d\n---\n", "skill name"),
        ("---\nname: a\ndescription: &x d\nother: *x\n---\n", "anchors"),
    ],
)
def test_bad_frontmatter_is_refused_with_a_reason(text, says):
    with pytest.raises(ValueError, match=None) as exc:
        parse_skill_md(text)
    assert says in str(exc.value)


def test_an_alias_bomb_is_refused_before_it_expands():
    bomb = "---\nname: a\ndescription: d\nx: &a [1, 1]\ny: &b [*a, *a]\nz: &c [*b, *b]\n---\n"
    with pytest.raises(ValueError, match="anchors|aliases"):
        parse_skill_md(bomb)


# -- unpack_zip -----------------------------------------------------------------
def make_zip(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def test_a_zip_is_unpacked_and_its_single_top_folder_stripped(tmp_path):
    archive = make_zip(tmp_path / "s.zip", {"s/SKILL.md": b"md", "s/lib/x.py": b"x", "s/": b""})
    unpack_zip(archive, tmp_path / "out")
    assert (tmp_path / "out" / "SKILL.md").read_bytes() == b"md"
    assert (tmp_path / "out" / "lib" / "x.py").read_bytes() == b"x"


def test_a_flat_zip_is_unpacked_as_it_is(tmp_path):
    archive = make_zip(tmp_path / "s.zip", {"SKILL.md": b"md", "lib/x.py": b"x"})
    unpack_zip(archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "SKILL.md",
        "lib",
        "lib/x.py",
    ]


@pytest.mark.parametrize(
    "name",
    ["../evil", "a/../../evil", "/etc/evil", "C:/evil", "a\\..\\evil", "ok/../../../evil"],
)
def test_a_member_that_would_leave_the_folder_refuses_the_whole_zip(tmp_path, name):
    archive = make_zip(tmp_path / "s.zip", {"SKILL.md": b"md", name: b"evil"})
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_zip(archive, tmp_path / "out" / "skill")
    assert not (tmp_path / "out").exists(), "nothing is written when one member is refused"
    assert not list(tmp_path.rglob("evil"))


def test_a_symlink_member_is_refused(tmp_path):
    archive = make_zip(tmp_path / "s.zip", {"SKILL.md": b"md"}, links={"passwd": "/etc/passwd"})
    with pytest.raises(ValueError, match="links are not allowed"):
        unpack_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_symlinked_dest_subfolder_is_not_followed_out(tmp_path):
    """A link already inside the destination (left by an earlier unpack) must not carry files out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "lib").symlink_to(outside)
    archive = make_zip(tmp_path / "s.zip", {"SKILL.md": b"md", "lib/x.py": b"x"})
    with pytest.raises(ValueError, match="unsafe path"):
        unpack_zip(archive, dest)
    assert list(outside.iterdir()) == []


def test_too_many_or_too_large_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(skills, "MAX_ZIP_FILES", 2)
    with pytest.raises(ValueError, match="more than 2 files"):
        unpack_zip(make_zip(tmp_path / "a.zip", {"a": b"", "b": b"", "c": b""}), tmp_path / "a")
    monkeypatch.setattr(skills, "MAX_ZIP_BYTES", 10)
    with pytest.raises(ValueError, match="more than 10 bytes"):
        unpack_zip(make_zip(tmp_path / "b.zip", {"a": b"x" * 6, "b": b"y" * 5}), tmp_path / "b")
    unpack_zip(make_zip(tmp_path / "c.zip", {"a": b"x" * 5, "b": b"y" * 5}), tmp_path / "c")
