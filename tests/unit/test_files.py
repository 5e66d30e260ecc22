"""files.write against code that changes the workspace while the gateway writes into it."""

from __future__ import annotations

import os

import pytest
from coderunner_gateway import files
from coderunner_gateway.errors import ApiError


def test_a_folder_swapped_for_a_link_after_resolving_is_refused_not_written_through(tmp_path):
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "data").mkdir(parents=True)
    outside.mkdir()
    target = files.resolve(str(ws), "data/x.txt")  # checked while data/ was a folder
    (ws / "data").rmdir()
    (ws / "data").symlink_to(outside)  # code swaps it for a link out
    with pytest.raises(ApiError) as err:
        files.write(str(ws), target, b"secret")
    assert (err.value.status, err.value.code) == (409, "conflict")
    assert list(outside.iterdir()) == []


def test_a_link_planted_at_the_file_name_is_replaced_not_followed(tmp_path):
    ws, outside = tmp_path / "ws", tmp_path / "outside.txt"
    ws.mkdir()
    outside.write_text("keep")
    target = files.resolve(str(ws), "x.txt")
    (ws / "x.txt").symlink_to(outside)  # planted after the check
    assert files.write(str(ws), target, b"new") == 3
    assert outside.read_text() == "keep"
    assert (ws / "x.txt").read_bytes() == b"new" and not (ws / "x.txt").is_symlink()


def test_folders_are_made_and_errors_name_what_is_in_the_way(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    assert files.write(str(ws), files.resolve(str(ws), "a/b/c.txt"), b"x") == 1
    assert (ws / "a" / "b" / "c.txt").read_bytes() == b"x"
    with pytest.raises(ApiError) as err:
        files.write(str(ws), files.resolve(str(ws), "a/b/c.txt/d"), b"x")
    assert (err.value.status, err.value.code) == (409, "not_a_directory") and "'c.txt'" in str(err.value)
    with pytest.raises(ApiError) as err:
        files.write(str(ws), files.resolve(str(ws), "a/b"), b"x")
    assert err.value.code == "is_a_directory"
    with pytest.raises(ApiError) as err:
        files.write(str(ws), files.resolve(str(ws), ""), b"x")
    assert err.value.code == "is_a_directory"
    assert sorted(os.listdir(ws / "a" / "b")) == ["c.txt"]  # no temp file left behind
