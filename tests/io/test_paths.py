"""``ecglens.io.paths.walk_files``: recursive listing that follows linked folders, once each."""

from __future__ import annotations

import os

import pytest

from ecglens.io.paths import walk_files

needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_lists_files_recursively_sorted_and_filtered(tmp_path):
    a = touch(tmp_path / "b" / "r2.HEA")
    b = touch(tmp_path / "a" / "deep" / "r1.hea")
    touch(tmp_path / "a" / "r1.dat")
    assert walk_files(tmp_path, {".hea"}) == [b, a]          # suffix match ignores case; sorted
    assert len(walk_files(tmp_path)) == 3


@needs_symlinks
def test_follows_linked_folders_and_survives_loops(tmp_path):
    real = tmp_path / "elsewhere"
    rec = touch(real / "sub" / "r.hea")
    root = tmp_path / "data"
    root.mkdir()
    (root / "link").symlink_to(real, target_is_directory=True)
    (root / "again").symlink_to(real, target_is_directory=True)   # the same folder twice
    (real / "sub" / "up").symlink_to(root, target_is_directory=True)  # a cycle back to the top
    found = walk_files(root, {".hea"})
    assert len(found) == 1                                   # listed once, under the first path that reached it
    assert found[0].resolve() == rec.resolve()
    assert found[0].parts[-3] in {"again", "link"}           # the path as the user sees it, link not resolved


def test_missing_folder_gives_nothing(tmp_path):
    assert walk_files(tmp_path / "nope") == []
