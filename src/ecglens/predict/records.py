"""Input discovery: files, folders and archives -> records, each once; reading one record with the options its
reader takes."""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..ecg import Ecg
from ..io.archive import ArchiveLimits, extract_archive, is_archive
from ..io.paths import path_suffix

__all__ = ["archive_names", "find_records", "read_record", "record_key", "unpack_archive", "unpacked_archives"]

#: folders that :func:`find_records` unpacked archives into, removed by :func:`unpacked_archives` (or, at the
#: latest, when the interpreter exits: each is a ``TemporaryDirectory``)
_UNPACKED: list[tempfile.TemporaryDirectory] = []
#: folder of an unpacked archive's members -> the archive as the user named it (for messages)
_ARCHIVE_OF: dict[str, str] = {}


def record_key(path: Path, present: Container[Path] | None = None) -> tuple[str, Path]:
    """(record name, file to read) of a record file.

    A record read through another file (a WFDB ``.hea``, ``.dat`` or ``.mat`` whose header exists) is named by
    its path without suffix and read by its record file (the ``.hea``); any other file is named and read by its
    path. ``present``: the files known to exist (:func:`ecglens.io.registry.record_file`).
    """
    from ..io.registry import record_file

    main = record_file(path, present)
    if main is not None:
        return str(path.with_suffix("")), main
    return str(path), path


def _folder_files(folder: Path, with_arrays: bool) -> list[Path]:
    """Record files under ``folder``, as the reader registry decides (:func:`ecglens.io.registry.is_record_file`);
    of the WFDB headers, only those of records with stored signals (not segment or layout headers)."""
    return [Path(name) if header is None else header for name, header in _folder_listing(folder, with_arrays)]


def _folder_listing(folder: Path, with_arrays: bool) -> list[tuple[str, Path | None]]:
    """:func:`_folder_files` as path strings, each with its ``Path`` when it is a WFDB header (those are built
    to read their first line; for the other files no ``Path`` is made here)."""
    from ..io.paths import walk_file_names
    from ..io.registry import listed_record_names
    from ..io.wfdb import signal_records

    # the tree is walked once; what it found replaces a look at the disk per file
    files = listed_record_names(walk_file_names(folder), raw=with_arrays)
    headers = {f: Path(f) for f in files if _is_header(f)}
    kept = set(signal_records(list(headers.values())))
    return [(f, headers.get(f)) for f in files if f not in headers or headers[f] in kept]  # walk order


def _is_header(name: str) -> bool:
    """Whether a path string names a WFDB header (``.hea``, any case)."""
    return path_suffix(name[name.rfind(os.sep) + 1:]).lower() == ".hea"


def find_records(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 with_arrays: bool = False, limits: ArchiveLimits | None = None) -> list[tuple[str, Path]]:
    """Expand files, folders and archives into records, each once.

    Parameters
    ----------
    inputs : path or iterable of paths
        Files (any supported format; a WFDB record as ``rec``, ``rec.hea``, ``rec.dat`` or ``rec.mat``),
        folders, searched recursively for the files of every registered format (the reader registry decides:
        :func:`ecglens.io.registry.is_record_file`; a ``.dat``/``.mat`` without header is kept so that its error is
        reported; raw arrays ``.npy``, ``.npz``, ``.csv``, ``.tsv`` only with ``with_arrays``), and ``.zip``,
        ``.tar``, ``.tar.gz``/``.tgz`` archives, unpacked into a private temporary folder and searched like a
        folder. Use inside :func:`unpacked_archives` to have those folders removed at the end of the block.
    with_arrays : bool
        Also collect raw arrays from folders (they need ``fs=`` to be read).
    limits : ArchiveLimits, optional
        Limits on each archive (default :class:`~ecglens.io.archive.ArchiveLimits`).

    Returns
    -------
    list of (record name, path to read)
        In input order (sorted within a folder or archive), duplicates removed. An archive member is named
        ``ARCHIVE/MEMBER`` (``export.zip/folder/rec.xml``; a WFDB record ``export.zip/folder/rec``). Missing
        files are kept (their error is reported when read).

    Raises
    ------
    ArchiveError
        For an archive that is unsafe (``..`` or absolute names, links, devices), over the limits, or damaged.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    seen: dict[str, Path] = {}
    for item in items:
        path = Path(item).expanduser()
        if path.is_file() and is_archive(path):
            pairs = _archive_records(path, with_arrays, limits)
        elif path.is_dir():
            pairs = _folder_pairs(path, with_arrays)
        else:
            pairs = [record_key(path)]
        for name, target in pairs:
            seen.setdefault(name, target)
    return list(seen.items())


def _folder_pairs(folder: Path, with_arrays: bool) -> list[tuple[str, Path]]:
    """:func:`record_key` of each record file of a folder: a header found in the listing names its record
    by its path without the suffix (it exists), any other file goes through :func:`record_key`."""
    pairs = []
    for name, header in _folder_listing(folder, with_arrays):
        if header is None:
            pairs.append(record_key(Path(name)))
        else:
            pairs.append((name[: len(name) - len(path_suffix(header.name))], header))
    return pairs


def unpack_archive(archive: str | os.PathLike[str], limits: ArchiveLimits | None = None) -> Path:
    """Unpack ``archive`` (:func:`~ecglens.io.archive.extract_archive`) into a new private temporary folder,
    removed when the enclosing :func:`unpacked_archives` block ends; returns the folder of its members."""
    workspace = tempfile.TemporaryDirectory(prefix="ecglens-archive-", ignore_cleanup_errors=True)
    _UNPACKED.append(workspace)
    folder = Path(workspace.name) / "members"
    _ARCHIVE_OF[str(folder)] = str(archive)
    extract_archive(archive, folder, limits)
    return folder


def archive_names(text: str) -> str:
    """``text`` with the temporary folders of unpacked archives replaced by the archives' names, so that a
    message names ``export.zip/folder/rec.xml``, not ``/tmp/ecglens-archive-.../members/folder/rec.xml``."""
    for folder, archive in _ARCHIVE_OF.items():
        text = text.replace(folder, archive)
    return text


def _archive_records(archive: Path, with_arrays: bool, limits: ArchiveLimits | None) -> list[tuple[str, Path]]:
    """Unpack ``archive`` into a new temporary folder and list its records, named ``ARCHIVE/MEMBER``."""
    folder = unpack_archive(archive, limits)
    pairs = []
    for file in _folder_files(folder, with_arrays):
        name, target = record_key(file)
        pairs.append((f"{archive}/{Path(name).relative_to(folder).as_posix()}", target))
    return pairs


@contextmanager
def unpacked_archives() -> Iterator[None]:
    """Remove, when the block ends, the folders that :func:`find_records` and :func:`unpack_archive` unpacked
    archives into within it.

    Examples
    --------
    >>> with unpacked_archives():                                       # doctest: +SKIP
    ...     table = predictor.predict_paths(["export.zip"])
    """
    start = len(_UNPACKED)
    try:
        yield
    finally:
        while len(_UNPACKED) > start:
            workspace = _UNPACKED.pop()
            _ARCHIVE_OF.pop(str(Path(workspace.name) / "members"), None)
            workspace.cleanup()


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
