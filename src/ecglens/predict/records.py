"""Input discovery: files and folders -> records, each once; reading one record with the options its reader takes."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..ecg import Ecg

__all__ = ["find_records", "read_record", "record_key"]


_WFDB_SUFFIXES = frozenset({".hea", ".dat", ".mat"})
#: suffixes picked up when searching folders (besides WFDB); raw arrays only when ``fs`` is given
_FOLDER_SUFFIXES = frozenset({".xml", ".dcm", ".dicom"})
_ARRAY_SUFFIXES = frozenset({".npy", ".npz", ".csv", ".tsv"})


def record_key(path: Path) -> tuple[str, Path]:
    """(record name, file to read) of a record file.

    A WFDB record (``.hea``, ``.dat``, ``.mat`` with a header beside it) is named by its path without suffix
    and read by its ``.hea``; any other file is named and read by its path.
    """
    if path.suffix.lower() in _WFDB_SUFFIXES:
        hea = path.with_suffix(".hea")
        if hea.exists():
            return str(path.with_suffix("")), hea
    return str(path), path


def _folder_files(folder: Path, with_arrays: bool) -> list[Path]:
    """Record files under ``folder``: WFDB headers (one per record), orphan .dat/.mat, vendor files, arrays."""
    from ..io.paths import walk_files
    from ..io.wfdb import signal_records

    suffixes = _FOLDER_SUFFIXES | (_ARRAY_SUFFIXES if with_arrays else frozenset())
    files = walk_files(folder)  # the tree is walked once
    all_headers = [h for h in files if h.suffix.lower() == ".hea"]
    headers = signal_records(all_headers)
    # segment and layout headers (not records themselves) still own their .dat files
    covered = {h.with_suffix("") for h in all_headers}
    others = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix in suffixes or (suffix in {".dat", ".mat"} and path.with_suffix("") not in covered):
            others.append(path)
    return sorted(headers + others)


def find_records(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 with_arrays: bool = False) -> list[tuple[str, Path]]:
    """Expand files and folders into records, each once.

    Parameters
    ----------
    inputs : path or iterable of paths
        Files (any supported format; a WFDB record as ``rec``, ``rec.hea``, ``rec.dat`` or ``rec.mat``) and
        folders, searched recursively for WFDB records (``.hea``; a ``.dat``/``.mat`` without header is kept so
        that its error is reported), ``.xml``, ``.dcm``/``.dicom`` files, and, with ``with_arrays``, ``.npy``,
        ``.npz``, ``.csv``, ``.tsv`` arrays. Other files in folders are ignored.
    with_arrays : bool
        Also collect raw arrays from folders (they need ``fs=`` to be read).

    Returns
    -------
    list of (record name, path to read)
        In input order (sorted within a folder), duplicates removed. Missing files are kept (their error is
        reported when read).
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    seen: dict[str, Path] = {}
    for item in items:
        path = Path(item).expanduser()
        files = _folder_files(path, with_arrays) if path.is_dir() else [path]
        for file in files:
            name, target = record_key(file)
            seen.setdefault(name, target)
    return list(seen.items())


_READ_PARAMS: dict[str, tuple[set[str], bool]] = {}


def read_record(path: str | os.PathLike[str], read_kwargs: Mapping[str, Any] | None = None) -> Ecg:
    """``read_ecg(path)`` passing only the ``read_kwargs`` the detected reader accepts.

    So ``fs=`` / ``leads=`` / ``units=`` given for raw arrays do not break the WFDB or XML readers of a mixed
    folder.
    """
    from ..io import detect_format, get_reader, read_ecg

    if not read_kwargs:
        return read_ecg(path)
    fmt, real = detect_format(path)
    if fmt not in _READ_PARAMS:
        params = inspect.signature(get_reader(fmt).read).parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        _READ_PARAMS[fmt] = (set(params), var_kw)
    names, var_kw = _READ_PARAMS[fmt]
    kwargs = {k: v for k, v in read_kwargs.items() if var_kw or k in names}
    return read_ecg(real, format=fmt, **kwargs)
