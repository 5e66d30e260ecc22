"""Skills: folders with a ``SKILL.md`` (YAML frontmatter: name, description) and files.

Public skills ship with the gateway; user skills come from a mounted dir,
where ``.zip`` files are unpacked safely (no absolute paths, no ``..``, no
links, bounded size). Names and filenames stay inside their skill's folder:
``..``, absolute paths and symlinks pointing out are refused.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ApiError, BadRequest, NotFound

log = logging.getLogger("coderunner_gateway")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_ZIP_BYTES = 100 * 1024 * 1024
MAX_ZIP_FILES = 2000
MAX_SKILL_MD_BYTES = 1024 * 1024  # a larger SKILL.md is skipped
MAX_SKILL_FILE_BYTES = 10 * 1024 * 1024  # larger skill files are served as a stream, refused over MCP


def default_public_dir() -> Path | None:
    env = os.environ.get("CODERUNNER_SKILLS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent / "public_skills"  # package data: a checkout and a wheel alike
    return here if here.is_dir() else None


@dataclass
class Skill:
    name: str
    description: str
    path: Path
    source: str  # public | user
    metadata: dict[str, Any] = field(default_factory=dict)
    instructions: str = ""

    def files(self) -> list[str]:
        out = []
        for root, dirs, names in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for n in sorted(names):
                p = Path(root) / n
                if not p.is_symlink():
                    out.append(str(p.relative_to(self.path)))
        return out

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source, "path": str(self.path)}

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "metadata": self.metadata, "instructions": self.instructions, "files": self.files()}


@functools.cache
def _no_alias_loader() -> type:
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """SafeLoader that refuses anchors and aliases: ``&a [*b, *b, ...]`` nested a few
        levels expands (when dumped as JSON) to gigabytes from a few hundred bytes."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise ValueError("YAML aliases (*name) are not allowed in SKILL.md frontmatter")
            event = self.peek_event()
            if getattr(event, "anchor", None) is not None:
                raise ValueError("YAML anchors (&name) and aliases are not allowed in SKILL.md frontmatter")
            return super().compose_node(parent, index)

    return NoAliasLoader


def parse_skill_md(text: str) -> tuple[dict[str, Any], str]:
    """Split ``---``-fenced YAML frontmatter from the body; parse it with PyYAML."""
    import yaml

    if not text.startswith("---"):
        raise ValueError("SKILL.md must start with YAML frontmatter between --- lines")
    parts = re.split(r"^---[ \t]*$", text, maxsplit=2, flags=re.MULTILINE)
    if len(parts) < 3:
        raise ValueError("SKILL.md frontmatter is not closed with a --- line")
    meta = yaml.load(parts[1], Loader=_no_alias_loader()) or {}
    if not isinstance(meta, dict):
        raise ValueError("SKILL.md frontmatter must be a mapping")
    for key in ("name", "description"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            raise ValueError(f"SKILL.md frontmatter needs a non-empty {key!r}")
    if not NAME.match(meta["name"]):
        raise ValueError(f"skill name {meta['name']!r} must be letters, digits, '.', '_' or '-'")
    return meta, parts[2].lstrip("\n")


class SkillStore:
    """``unpack_dir`` receives the user dir's zips, so the user dir can be mounted read-only."""

    def __init__(self, public_dir: Path | None, user_dir: Path | None, unpack_dir: Path | None = None) -> None:
        self.public_dir = public_dir
        self.user_dir = user_dir
        self.unpack_dir = unpack_dir

    def scan(self) -> dict[str, Skill]:
        """Read the folders afresh (skills added to the user dir appear at once)."""
        if self.user_dir is not None and self.unpack_dir is not None and self.user_dir.is_dir():
            self._unpack_zips(self.user_dir, self.unpack_dir)
        found: dict[str, Skill] = {}
        for source, base in (("public", self.public_dir), ("user", self.user_dir), ("user", self.unpack_dir)):
            if base is None or not base.is_dir():
                continue
            for folder in sorted(base.iterdir()):
                md = folder / "SKILL.md"
                if folder.is_symlink() or not folder.is_dir() or not md.is_file() or md.is_symlink():
                    continue
                try:
                    if md.stat().st_size > MAX_SKILL_MD_BYTES:
                        raise ValueError(f"SKILL.md is over {MAX_SKILL_MD_BYTES} bytes")
                    meta, body = parse_skill_md(md.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError, OSError) as exc:
                    log.warning("skipping skill %s: %s", folder, exc)
                    continue
                except Exception as exc:  # yaml.YAMLError
                    log.warning("skipping skill %s: bad YAML: %s", folder, exc)
                    continue
                if meta["name"] in found:
                    log.warning("skill %s in %s shadows the %s one", meta["name"], source, found[meta["name"]].source)
                found[meta["name"]] = Skill(
                    meta["name"],
                    meta["description"].strip(),
                    folder.resolve(),
                    source,
                    {k: v for k, v in meta.items() if k not in ("name", "description")},
                    body,
                )
        return found

    def all_skills(self) -> list[Skill]:
        return list(self.scan().values())

    def get(self, name: str) -> Skill:
        if not NAME.match(name):
            raise BadRequest(f"{name!r} is not a skill name", code="invalid_skill_name")
        skill = self.scan().get(name)
        if skill is None:
            raise NotFound(f"no skill {name!r}: list them with GET /v1/skills", code="skill_not_found")
        return skill

    def file(self, name: str, filename: str) -> Path:
        skill = self.get(name)
        if not filename or filename.startswith("/") or "\x00" in filename or ".." in Path(filename).parts:
            raise ApiError(f"file {filename!r} is outside skill {name!r}", code="path_outside_skill", status=403)
        candidate = skill.path / filename
        missing = NotFound(f"skill {name!r} has no file {filename!r}", code="file_not_found")
        try:
            if candidate.is_symlink() or any(p.is_symlink() for p in candidate.parents if skill.path in p.parents):
                raise ApiError(f"file {filename!r} is a link: refused", code="path_outside_skill", status=403)
            target = candidate.resolve()
            if skill.path not in target.parents:
                raise ApiError(f"file {filename!r} is outside skill {name!r}", code="path_outside_skill", status=403)
            if not target.is_file():
                raise missing
        except OSError as exc:  # a name too long, a loop
            raise missing from exc
        return target

    @staticmethod
    def _unpack_zips(base: Path, into: Path) -> None:
        for archive in base.glob("*.zip"):
            dest = into / archive.stem
            marker = dest / ".unpacked-from-zip"
            if marker.exists() and marker.stat().st_mtime >= archive.stat().st_mtime:
                continue
            try:
                unpack_zip(archive, dest)
                marker.write_text(archive.name)
            except (ValueError, zipfile.BadZipFile, OSError) as exc:
                log.warning("not unpacking %s: %s", archive, exc)


def unpack_zip(archive: Path, dest: Path) -> None:
    """Extract with every member checked first: nothing escapes ``dest``."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_FILES:
            raise ValueError(f"more than {MAX_ZIP_FILES} files")
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise ValueError(f"unpacks to more than {MAX_ZIP_BYTES} bytes")
        # a zip of one top folder named like the skill: strip that folder
        tops = {m.filename.split("/", 1)[0] for m in members}
        strip = len(tops) == 1 and all("/" in m.filename for m in members if not m.is_dir())
        root = dest.resolve()
        plan = []
        for m in members:
            name = m.filename.split("/", 1)[1] if strip else m.filename
            if not name or name.endswith("/"):
                continue
            if name.startswith("/") or "\\" in name or ".." in Path(name).parts or ":" in name.split("/", 1)[0]:
                raise ValueError(f"unsafe path {m.filename!r}")
            mode = m.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ValueError(f"links are not allowed: {m.filename!r}")
            target = (root / name).resolve()
            if root not in target.parents:
                raise ValueError(f"unsafe path {m.filename!r}")
            plan.append((m, target))
        root.mkdir(parents=True, exist_ok=True)
        for m, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                out.write(src.read(MAX_ZIP_BYTES + 1))
