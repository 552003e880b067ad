"""Folders written atomically: build in a sibling ``OUT.tmp-<pid>``, move into place with :func:`os.replace`.

Used by :mod:`ecglens.data.cache` (``prepare_cache``, ``write_cache``): a crash (even ``kill -9``) never leaves a
folder that looks complete: a leftover is recognised by its name (:func:`leftover_of`), which ``is_cache`` and
``open_cache`` refuse, and the temporary folders of crashed runs are removed on the next run (never those of
running ones).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..exceptions import CorruptRecordError

__all__ = ["clean_leftovers", "leftover_of", "move_into_place", "shrink_npy", "temp_path"]

_TMP_TAG = ".tmp-"
_OLD_TAG = ".old-"
_LEFTOVER = re.compile(r"(?P<out>.+)\.(?:tmp|old)-(?P<pid>\d+)")


def temp_path(out: Path) -> Path:
    """The sibling folder ``OUT.tmp-<pid>`` in which this process builds ``out``."""
    return out.parent / f"{out.name}{_TMP_TAG}{os.getpid()}"


def leftover_of(path: Path) -> tuple[str, int] | None:
    """``(OUT name, pid)`` when ``path`` is named like the temporary (``OUT.tmp-<pid>``) or moved-aside
    (``OUT.old-<pid>``) folder of a build; None for any other name."""
    match = _LEFTOVER.fullmatch(path.name)
    return (match["out"], int(match["pid"])) if match else None


def _pid_alive(pid: int) -> bool:
    """True when a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(out: Path) -> None:
    """Remove ``OUT.tmp-<pid>`` / ``OUT.old-<pid>`` folders left by crashed runs (not by running ones)."""
    if not out.parent.is_dir():
        return
    for tag in (_TMP_TAG, _OLD_TAG):
        for leftover in out.parent.glob(f"{out.name}{tag}*"):
            pid = leftover.name[len(out.name) + len(tag):]
            if pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
                shutil.rmtree(leftover, ignore_errors=True)


def move_into_place(tmp: Path, out: Path) -> None:
    """Atomically put the finished folder ``tmp`` at ``out`` (an existing ``out`` is moved aside first)."""
    old = None
    if out.exists():
        old = out.parent / f"{out.name}{_OLD_TAG}{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def shrink_npy(path: Path, n_rows: int) -> None:
    """Change the first dimension of the ``.npy`` file at ``path`` to ``n_rows`` in place and truncate it.

    The header keeps its length (the npy format pads the header dict with spaces), so the data offset does not
    move; rows past ``n_rows`` are cut off.
    """
    with open(path, "r+b") as fp:
        version = np.lib.format.read_magic(fp)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}[version]
        shape, fortran, dtype = read_header(fp)
        offset = fp.tell()
        prefix = 6 + 2 + (2 if version == (1, 0) else 4)
        header = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran,
                       "shape": (n_rows, *shape[1:])})
        room = offset - prefix - 1
        if len(header) > room:  # cannot happen when shrinking; guard anyway
            raise CorruptRecordError(f"{path}: cannot rewrite the npy header in place; delete the folder and "
                                     "prepare again.")
        fp.seek(prefix)
        fp.write((header + " " * (room - len(header)) + "\n").encode("latin1"))
        fp.truncate(offset + n_rows * int(np.prod(shape[1:])) * dtype.itemsize)
