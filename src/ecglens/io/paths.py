"""Finding files in folder trees, following symbolic links.

Data folders are often assembled from links (``ptbxl/records100 -> /mnt/big/ptbxl/records100``), and
``Path.rglob`` does not descend into linked folders on Python < 3.13. :func:`walk_files` does, and visits each
real folder once, so a link that points back up the tree cannot loop forever.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["path_suffix", "walk_file_names", "walk_files"]


def walk_files(folder: str | os.PathLike[str], suffixes: Iterable[str] | None = None) -> list[Path]:
    """Every file under ``folder``, following linked folders, sorted.

    Parameters
    ----------
    folder : str or Path
        The folder to search (recursively).
    suffixes : iterable of str, optional
        Keep only files whose suffix, lower-cased, is one of these (e.g. ``{".hea"}``); all files by default.

    Returns
    -------
    list of Path
        Paths under ``folder`` as the user sees them (links not resolved), in sorted order. A folder reached
        twice through links (or a link cycle) is listed once, under the first path that reached it.
    """
    return [Path(name) for name in walk_file_names(folder, suffixes)]


def walk_file_names(folder: str | os.PathLike[str], suffixes: Iterable[str] | None = None) -> list[str]:
    """:func:`walk_files` as strings (``str`` of each of its paths), without building a ``Path`` per file.

    For listings of many files (10,000 records are 20,000 files): a ``Path`` costs microseconds to build, hash
    and take apart, the string a fraction of that; callers make paths of the files they keep.
    """
    wanted = None if suffixes is None else {s.lower() for s in suffixes}
    seen: set[str] = set()
    found: list[str] = []
    top = str(Path(folder))  # normalised as Path prints it, so every name below is too ("." prints names bare)
    todo = [top]
    while todo:  # depth first, sorted: the order of os.walk(top-down) with sorted folders
        root = todo.pop()
        real = os.path.realpath(root)
        if real in seen:
            continue            # already walked through another path: do not list (or descend) it twice
        seen.add(real)
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue            # unreadable, or gone: as os.walk, skip it
        folders = []
        for entry in entries:
            try:
                if entry.is_dir():      # follows links to folders
                    folders.append(entry.name if root == "." else entry.path)
                elif (wanted is None or path_suffix(entry.name).lower() in wanted) and entry.is_file():
                    # not a broken link, a socket or a device; no stat for a file
                    found.append(entry.name if root == "." else entry.path)
            except OSError:
                continue
        todo.extend(sorted(folders, reverse=True))
    return sorted(found, key=_parts)


def path_suffix(name: str) -> str:
    """``Path(name).suffix`` of a file name (no folder part), as pathlib defines it: from the last dot, unless the
    name starts or ends there (``".hea"`` and ``"rec."`` have none)."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def _parts(name: str) -> list[str]:
    """Sort key giving ``Path`` order (by components) of normalised path strings under one folder."""
    return name.split(os.sep)
