"""Workspace files over HTTP, confined to the workspace.

A path is resolved (symlinks included) and must stay inside the resolved
workspace; ``..``, absolute paths and links pointing out are refused. A delete
resolves all but the last name: deleting a link deletes the link.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from .errors import ApiError, BadRequest, NotFound

MAX_NAME_BYTES = 255  # NAME_MAX
MAX_PATH_BYTES = 4000  # under PATH_MAX with the workspace in front


def _check(rel: str) -> None:
    if rel.startswith("/") or "\x00" in rel:
        raise BadRequest(f"path {rel!r} must be relative to the workspace", code="invalid_path")
    if len(rel.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES or any(
        len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in rel.split("/")
    ):
        raise BadRequest(
            f"path is too long: at most {MAX_NAME_BYTES} bytes a name and {MAX_PATH_BYTES} in all", code="invalid_path"
        )


def resolve(workspace: str, rel: str) -> Path:
    _check(rel)
    root = Path(workspace).resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise ApiError(f"path {rel!r} leaves the workspace", code="path_outside_workspace", status=403)
    return target


def listing(path: Path, root: Path) -> dict:
    entries = []
    for child in sorted(path.iterdir()):
        st = child.lstat()
        entries.append(
            {
                "name": child.name,
                "path": str(child.relative_to(root)),
                "type": "dir" if stat.S_ISDIR(st.st_mode) else "file",
                "size": st.st_size,
                "mtime": st.st_mtime,
            }
        )
    return {"path": str(path.relative_to(root)) if path != root else "", "entries": entries}


def _not_a_folder(name: str) -> ApiError:
    return ApiError(
        f"{name!r} is a file, not a folder: delete or rename it first, or write elsewhere",
        code="not_a_directory",
        status=409,
    )


def owner(workspace: str | Path) -> tuple[int, int] | None:
    """Who what the gateway writes into the workspace must belong to: the workspace's owner
    (the code's uid: the jails give it a root-owned workspace) when the gateway is root, so
    code can change the files it was given; None otherwise (they are the gateway's = ours)."""
    if os.geteuid() != 0:
        return None
    st = os.stat(workspace)
    return st.st_uid, st.st_gid


def write(workspace: str | Path, path: Path, data: bytes) -> int:
    """Write ``data`` at ``path`` (from :func:`resolve`), atomically, making folders as needed.

    Every step goes through a folder opened a name at a time without following links, so code
    that swaps a folder for a link meanwhile is refused (409), never written through; what is
    made belongs to :func:`owner`."""
    root = Path(workspace).resolve()
    if path == root:
        raise ApiError("the workspace itself is a directory: name a file in it", code="is_a_directory", status=409)
    own = owner(root)
    fd = _make_folder(root, path.parent, own)
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(path.name, dir_fd=fd).st_mode):
                raise ApiError(f"{path.name!r} is a directory", code="is_a_directory", status=409)
        # the temp name does not grow with the file's (a name may be NAME_MAX bytes itself), and
        # it cannot be guessed: created new, never through a link code planted under that name
        tmp = f".coderunner-tmp-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(tmp, flags, 0o666, dir_fd=fd)
        try:
            with open(out, "wb") as f:
                if own is not None:
                    os.fchown(f.fileno(), *own)
                f.write(data)
            os.replace(tmp, path.name, src_dir_fd=fd, dst_dir_fd=fd)  # a link there is replaced, not followed
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
    finally:
        os.close(fd)
    return len(data)


def _make_folder(root: Path, folder: Path, own: tuple[int, int] | None) -> int:
    """An fd of ``folder`` (inside ``root``), its missing folders made (owned by ``own``), each
    opened without following a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folder.relative_to(root).parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=fd)
                if own is not None:
                    os.chown(part, *own, dir_fd=fd, follow_symlinks=False)
            try:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:  # ENOTDIR: a file where a folder must be; ELOOP: a link swapped in
                if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                    raise ApiError(
                        f"{str(folder.relative_to(root))!r} changed while it was being written: retry",
                        code="conflict",
                        status=409,
                    ) from exc
                raise _not_a_folder(part) from exc
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def resolve_entry(workspace: str, rel: str) -> Path:
    """The entry ``rel`` names, for deleting it: its folder is resolved as :func:`resolve` does
    (links inside the workspace followed, links out refused), its last name is not, so a link
    names the link itself, never its target (in the workspace or out of it)."""
    _check(rel)
    parent, _, name = rel.rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        return resolve(workspace, rel)
    return resolve(workspace, parent) / name


def _open_folder(root: Path, folder: Path) -> int:
    """An fd of ``folder`` (resolved, inside ``root``), opened a name at a time without following
    a link: a folder that code swaps for a link after resolving is refused, not followed out."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folder.relative_to(root).parts:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except FileNotFoundError as exc:
        os.close(fd)
        raise NotFound(f"no folder {str(folder.relative_to(root))!r} in the workspace", code="file_not_found") from exc
    except OSError as exc:  # ELOOP, ENOTDIR: a link or a file appeared where the folder was
        os.close(fd)
        raise ApiError(
            f"{str(folder.relative_to(root))!r} changed while it was being used: retry", code="conflict", status=409
        ) from exc
    return fd


def remove(path: Path, root: Path) -> None:
    """Delete ``path`` (from :func:`resolve_entry`): a file, a link (not its target) or an empty folder."""
    if path == root:
        raise ApiError("refusing to delete the workspace itself", code="forbidden", status=403)
    rel = str(path.relative_to(root))
    fd = _open_folder(root, path.parent)
    try:
        try:
            st = os.lstat(path.name, dir_fd=fd)
        except FileNotFoundError as exc:
            raise NotFound(f"no file {rel!r} in the workspace", code="file_not_found") from exc
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(path.name, dir_fd=fd)
            except OSError as exc:
                raise ApiError(
                    "the directory is not empty: delete its files first", code="directory_not_empty", status=409
                ) from exc
        else:
            os.unlink(path.name, dir_fd=fd)  # a link goes itself: unlink never follows one
    except FileNotFoundError as exc:  # deleted meanwhile
        raise NotFound(f"no file {rel!r} in the workspace", code="file_not_found") from exc
    finally:
        os.close(fd)
