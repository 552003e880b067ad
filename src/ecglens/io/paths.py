"""Finding files in folder trees, following symbolic links.

Data folders are often assembled from links (``ptbxl/records100 -> /mnt/big/ptbxl/records100``), and
``Path.rglob`` does not descend into linked folders on Python < 3.13. :func:`walk_files` does, and visits each
real folder once, so a link that points back up the tree cannot loop forever.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["walk_files"]


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
    wanted = None if suffixes is None else {s.lower() for s in suffixes}
    seen: set[str] = set()
    found: list[Path] = []
    todo = [os.fspath(folder)]
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
        base, folders = Path(root), []
        for entry in entries:
            try:
                if entry.is_dir():      # follows links to folders
                    folders.append(entry.path)
                elif (wanted is None or os.path.splitext(entry.name)[1].lower() in wanted) and entry.is_file():
                    found.append(base / entry.name)  # not a broken link, a socket or a device; no stat for a file
            except OSError:
                continue
        todo.extend(sorted(folders, reverse=True))
    return sorted(found, key=_parts)


def _parts(path: Path) -> tuple[str, ...]:
    """Sort key giving ``Path`` order (by components) without ``Path.__lt__``'s cost per comparison."""
    return path.parts
