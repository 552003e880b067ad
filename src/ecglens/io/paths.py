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
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []        # already walked through another path: do not list (or descend) it twice
            continue
        seen.add(real)
        dirs.sort()
        base = Path(root)
        for name in files:
            if wanted is None or os.path.splitext(name)[1].lower() in wanted:
                if os.path.isfile(os.path.join(root, name)):  # not a broken link, a socket or a device
                    found.append(base / name)
    return sorted(found, key=_parts)


def _parts(path: Path) -> tuple[str, ...]:
    """Sort key giving ``Path`` order (by components) without ``Path.__lt__``'s cost per comparison."""
    return path.parts
