"""Archives of ECG records (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``), unpacked safely into a private folder.

Hospital exports arrive as archives. :func:`extract_archive` writes an archive's regular files into a folder
the caller owns (a temporary one), under names made of safe characters and never at a path taken from the
archive as it is. The one implementation is shared by ``ecglens predict``/``prepare``/``info`` and the web
service. Refused with an :class:`ArchiveError` (a :class:`~ecglens.exceptions.CorruptRecordError`), before any
of their bytes are written:

- member names that are absolute (``/etc/x``, ``C:\\x``) or climb out (``../x``);
- symbolic and hard links, device files and FIFOs;
- more members than ``ArchiveLimits.max_members``;
- more unpacked bytes than ``ArchiveLimits.max_bytes`` (bytes are counted as they are written: declared sizes
  can lie), or a compression ratio above ``ArchiveLimits.max_ratio`` (zip bombs);
- encrypted, truncated or damaged archives.

Only the standard library is used (``zipfile``, ``tarfile``; the ``tarfile`` ``'data'`` filter is applied as a
second check where the Python version has it). Folders, hidden files (``.DS_Store``) and ``__MACOSX`` entries
are skipped.
"""

from __future__ import annotations

import lzma
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ..exceptions import CorruptRecordError

__all__ = ["ARCHIVE_SUFFIXES", "ArchiveError", "ArchiveLimits", "extract_archive", "is_archive", "safe_filename"]

#: the archive suffixes ecglens unpacks (lower case; matched at the end of the file name)
ARCHIVE_SUFFIXES: tuple[str, ...] = (".zip", ".tar", ".tar.gz", ".tgz")
_MB = 1024 * 1024
_CHUNK = 1 << 20
#: compression ratios above ``max_ratio`` are refused only beyond this many unpacked bytes (tiny files of
#: zeros compress very well and are harmless)
_RATIO_FLOOR = _MB
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120


class ArchiveError(CorruptRecordError):
    """An archive that is refused: unsafe member, too large, too many members, or damaged.

    ``kind`` is one of ``"unsafe"``, ``"too_large"``, ``"too_many_members"``, ``"corrupt"``, ``"duplicate"``.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits on one archive.

    Parameters
    ----------
    max_members : int
        Most members (files, folders and anything else) in the archive.
    max_bytes : int
        Largest total size of the unpacked files, bytes.
    max_ratio : float
        Largest ratio of unpacked to compressed bytes (per zip member; for a compressed tar, the whole archive
        against its file size), checked once more than 1 MB is unpacked.
    """

    max_members: int = 200_000
    max_bytes: int = 64 * 1024 * _MB
    max_ratio: float = 200.0


def safe_filename(name: str | None, default: str = "upload") -> str:
    """A file name reduced to a safe basename.

    Any folder part (``/`` or ``\\``) is dropped, characters outside ``A-Z a-z 0-9 . _ -`` become ``_``, leading
    dots are removed (no hidden files, no ``..``) and the result is at most 120 characters (suffix kept).

    >>> safe_filename("../../etc/pass wd.hea")
    'pass_wd.hea'
    """
    base = re.split(r"[\\/]", str(name or ""))[-1]
    base = _SAFE_CHARS.sub("_", base).lstrip(".")
    if len(base) > _MAX_NAME:
        stem, dot, suffix = base.rpartition(".")
        keep = f".{suffix[:16]}" if dot and stem else ""
        base = base[: _MAX_NAME - len(keep)] + keep
    return base if base.strip("._-") else default


def is_archive(path: str | Path) -> bool:
    """True when the file name ends with one of :data:`ARCHIVE_SUFFIXES` (case-insensitive)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _member_parts(name: str, archive: Path) -> tuple[str, ...] | None:
    """The safe relative path parts of a member name; ``None`` for entries to skip; ArchiveError if unsafe."""
    raw = name.replace("\\", "/")
    parts = PurePosixPath(raw).parts
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw) or ".." in parts:
        raise ArchiveError(f"{archive.name}: the member {name!r} points outside the archive (absolute path or "
                           "'..'); ecglens refuses such archives. Archive the records with relative names.", "unsafe")
    parts = tuple(p for p in parts if p not in ("", "."))
    if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return None
    return tuple(safe_filename(p, default="_") for p in parts)


class _Writer:
    """Writes members under ``folder``, counting bytes against the limits."""

    def __init__(self, archive: Path, folder: Path, limits: ArchiveLimits) -> None:
        self.archive, self.folder, self.limits = archive, folder, limits
        self.total = 0
        self.written: dict[Path, str] = {}

    def target(self, name: str) -> Path | None:
        parts = _member_parts(name, self.archive)
        if parts is None:
            return None
        target = self.folder.joinpath(*parts)
        if target in self.written:
            raise self.duplicate(name)
        return target

    def duplicate(self, name: str) -> ArchiveError:
        return ArchiveError(f"{self.archive.name} holds two members named {name!r} (after making the names "
                            "safe); rename one of them.", "duplicate")

    def too_large(self, ratio: bool = False) -> ArchiveError:
        what = (f"compresses more than {self.limits.max_ratio:g}:1 (a zip bomb?)" if ratio
                else f"unpacks to more than {self.limits.max_bytes / _MB:g} MB")
        return ArchiveError(f"{self.archive.name} {what}; ecglens refuses it. Split the archive or unpack it "
                            "yourself.", "too_large")

    def copy(self, src: IO[bytes], target: Path, name: str, ratio_budget: float) -> None:
        """Copy one member; more than ``ratio_budget`` bytes from it break the compression ratio limit."""
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                self.total += len(chunk)
                if self.total > self.limits.max_bytes:
                    raise self.too_large()
                if written > ratio_budget:
                    raise self.too_large(ratio=True)
                dst.write(chunk)
        self.written[target] = name


def _check_count(n: int, archive: Path, limits: ArchiveLimits) -> None:
    if n > limits.max_members:
        raise ArchiveError(f"{archive.name} holds more than {limits.max_members} members; split the archive.",
                           "too_many_members")


@contextmanager
def _damaged(archive: Path) -> Iterator[None]:
    """Turn the errors of a damaged archive into ArchiveError('corrupt')."""
    try:
        yield
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, RuntimeError,
            OSError, EOFError, ValueError, NotImplementedError) as err:
        raise ArchiveError(f"{archive.name} cannot be unpacked ({type(err).__name__}: {err}); encrypted or "
                           "damaged archives are not supported. Check the file or unpack it yourself.",
                           "corrupt") from None


def _extract_zip(archive: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_count(len(infos), archive, writer.limits)
        members, targets = [], set()
        for info in infos:
            mode = (info.external_attr >> 16) & 0o170000
            if mode not in (0, 0o100000, 0o040000):  # a symbolic link or special file stored by a Unix zip
                raise ArchiveError(f"{archive.name}: the member {info.filename!r} is a link or special file; "
                                   "ecglens reads regular files only.", "unsafe")
            target = None if info.is_dir() else writer.target(info.filename)
            if target is not None:
                if target in targets:
                    raise writer.duplicate(info.filename)
                targets.add(target)
                members.append((info, target))
        if sum(info.file_size for info, _ in members) > writer.limits.max_bytes:
            raise writer.too_large()
        for info, target in members:
            with zf.open(info) as src:
                budget = max(_RATIO_FLOOR, writer.limits.max_ratio * info.compress_size)
                writer.copy(src, target, info.filename, budget)


def _tar_member_ok(member: tarfile.TarInfo, archive: Path, folder: Path) -> bool:
    """True for a regular file, False for a folder; ArchiveError for links, devices and FIFOs."""
    if member.isdir():
        return False
    if not member.isreg():
        raise ArchiveError(f"{archive.name}: the member {member.name!r} is a link, device or FIFO; ecglens reads "
                           "regular files only.", "unsafe")
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:
        try:
            data_filter(member, str(folder))
        except tarfile.FilterError as err:
            raise ArchiveError(f"{archive.name}: the member {member.name!r} is refused ({err}).", "unsafe") from None
    return True


def _extract_tar(archive: Path, writer: _Writer) -> None:
    size = archive.stat().st_size
    plain = _is_plain_tar(archive)
    with tarfile.open(archive, "r:*") as tf:
        count = 0
        while (member := tf.next()) is not None:
            count += 1
            _check_count(count, archive, writer.limits)
            target = writer.target(member.name)
            if target is None or not _tar_member_ok(member, archive, writer.folder):
                continue
            src = tf.extractfile(member)
            if src is not None:  # a compressed tar: the whole archive's ratio, against its file size
                budget = float("inf") if plain else max(_RATIO_FLOOR, writer.limits.max_ratio * size) - writer.total
                writer.copy(src, target, member.name, budget)


def _is_plain_tar(archive: Path) -> bool:
    with open(archive, "rb") as fh:
        head = fh.read(6)
    return not head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))


def extract_archive(archive: str | Path, folder: str | Path,
                    limits: ArchiveLimits | None = None) -> dict[Path, str]:
    """Unpack the regular files of a zip or tar archive into ``folder`` (created; it should be private).

    Parameters
    ----------
    archive : str or Path
        A ``.zip``, ``.tar``, ``.tar.gz`` or ``.tgz`` file (the content decides between zip and tar).
    folder : str or Path
        Where to write; member paths are kept below it, each part reduced to safe characters.
    limits : ArchiveLimits, optional
        Member count, unpacked size and compression ratio limits (default: :class:`ArchiveLimits`).

    Returns
    -------
    dict of Path -> str
        Each written file -> the member's name in the archive (``"folder/rec.hea"``), in archive order.

    Raises
    ------
    ArchiveError
        For unsafe members, archives over the limits, and damaged or encrypted archives (nothing more is
        written once an error is found; the caller removes ``folder``).
    """
    archive, folder = Path(archive), Path(folder)
    writer = _Writer(archive, folder, limits or ArchiveLimits())
    folder.mkdir(parents=True, exist_ok=True)
    with _damaged(archive):
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, writer)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, writer)
        else:
            raise ArchiveError(f"{archive.name} is not a readable zip or tar archive.", "corrupt")
    return dict(writer.written)

