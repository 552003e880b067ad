"""The reader registry: one reader per file format, chosen by content, never guessed.

A reader is a function ``read(path: Path, **kwargs) -> Ecg`` registered with :func:`register_reader`, together
with the file suffixes it claims and a ``sniff(path) -> bool`` that looks at the file's content. ``read_ecg``
picks the reader whose suffix matches *and* whose sniff accepts the file; a file that no reader accepts raises
:class:`~ecglens.exceptions.UnsupportedFormatError` naming the formats that were tried.

The registry is also the one place that says which files are records: folder search
(:func:`ecglens.predict.find_records`), archives and the web service's uploads all ask :func:`is_record_file`,
:func:`record_file` and :func:`record_suffixes` instead of keeping their own lists of suffixes.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import import_submodules
from ..ecg import Ecg
from ..exceptions import CorruptRecordError, EcglensError, UnsupportedFormatError
from .paths import path_suffix

log = logging.getLogger(__name__)

__all__ = ["ReaderSpec", "companion_of", "detect_format", "get_reader", "is_record_file", "list_readers",
           "read_ecg", "record_file", "record_suffixes", "register_reader"]


@dataclass(frozen=True)
class ReaderSpec:
    """A registered reader.

    Attributes
    ----------
    name : str
        Format name used with ``read_ecg(path, format=name)``.
    suffixes : tuple of str
        Lower-case suffixes the format uses (``".hea"``, ``".xml"``); the path's suffix must be one of them.
    read : callable
        ``read(path, **kwargs) -> Ecg``.
    sniff : callable
        ``sniff(path) -> bool``: True when the content looks like this format (cheap; reads a few bytes).
    priority : int
        Higher is tried first among readers that claim the same suffix (specific before generic).
    description : str
        One line for ``ecglens formats`` and error messages.
    companions : tuple of str
        Suffixes of files that belong to a record read through its file with the first suffix (WFDB: a
        ``.hea`` names its ``.dat``/``.mat`` signal files).
    raw : bool
        The reader reads raw sample arrays, which carry no sampling rate (it takes ``fs=``): folder search lists
        its files only when asked to.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[..., Ecg]
    sniff: Callable[[Path], bool]
    priority: int = 0
    description: str = ""
    companions: tuple[str, ...] = ()
    raw: bool = False


_READERS: dict[str, ReaderSpec] = {}


@dataclass(frozen=True)
class _SuffixRule:
    """What the registry says about every file with one (lower-case) suffix, worked out once per suffix.

    ``record_suffix``: the suffix of the file its record is read through (a companion's record file, or the
    suffix itself for a multi-file format's record file), None for single-file formats and unclaimed suffixes;
    ``listed``: an eligible reader claims it; ``sniffers``: the eligible readers whose sniff decides whether it
    is listed (empty when the suffix alone decides).
    """

    record_suffix: str | None
    listed: bool
    sniffers: tuple[ReaderSpec, ...]


#: (suffix, raw) -> its rule; cleared whenever a reader is registered
_SUFFIX_RULES: dict[tuple[str, bool], _SuffixRule] = {}


def register_reader(
    name: str,
    suffixes: tuple[str, ...],
    sniff: Callable[[Path], bool] | None = None,
    priority: int = 0,
    description: str = "",
    companions: tuple[str, ...] = (),
) -> Callable[[Callable[..., Ecg]], Callable[..., Ecg]]:
    """Decorator that registers ``read(path, **kwargs) -> Ecg`` under ``name``.

    ``companions`` are the suffixes of files read through the record file (WFDB's ``.dat`` / ``.mat`` beside the
    ``.hea``): folder search and uploads treat them as part of their record, not as records.
    """

    def deco(fn: Callable[..., Ecg]) -> Callable[..., Ecg]:
        if name in _READERS:
            raise ValueError(f"a reader named {name!r} is already registered")
        _SUFFIX_RULES.clear()  # the rules per suffix are derived from the registry
        _READERS[name] = ReaderSpec(
            name=name,
            suffixes=tuple(s.lower() for s in suffixes),
            read=fn,
            sniff=sniff or (lambda p: True),
            priority=priority,
            description=description or ((fn.__doc__ or "").strip().splitlines() or [""])[0],
            companions=tuple(s.lower() for s in companions),
            raw="fs" in inspect.signature(fn).parameters,
        )
        return fn

    return deco


def list_readers() -> list[ReaderSpec]:
    """All registered readers, highest priority first."""
    _ensure_loaded()
    return sorted(_READERS.values(), key=lambda r: (-r.priority, r.name))


def get_reader(name: str) -> ReaderSpec:
    """Return the reader registered as ``name``."""
    _ensure_loaded()
    if name not in _READERS:
        raise UnsupportedFormatError(f"unknown format {name!r}; known formats: {sorted(_READERS)}.")
    return _READERS[name]


def record_suffixes(raw: bool = False) -> frozenset[str]:
    """Lower-case suffixes of the files a reader claims (with companions); raw-array readers only with ``raw``."""
    _ensure_loaded()
    return frozenset(s for r in _READERS.values() if raw or not r.raw for s in (*r.suffixes, *r.companions))


def companion_of(path: str | Path) -> Path | None:
    """The record file that a companion file belongs to (``rec.dat`` -> ``rec.hea``), whether or not it exists;
    ``None`` for a file that is no companion."""
    _ensure_loaded()
    path = path if isinstance(path, Path) else Path(path)
    suffix = path.suffix.lower()
    record_suffix = _suffix_rule(suffix, False).record_suffix
    return None if record_suffix in (None, suffix) else path.with_suffix(record_suffix)


def _suffix_rule(suffix: str, raw: bool) -> _SuffixRule:
    """The registry's rule for files with ``suffix`` (lower case; :class:`_SuffixRule`), cached per suffix."""
    rule = _SUFFIX_RULES.get((suffix, raw))
    if rule is None:
        readers = list_readers()
        owner = next((r for r in _READERS.values() if suffix in r.companions), None)
        if owner is not None:
            record_suffix: str | None = owner.suffixes[0]
        elif any(r.companions and suffix == r.suffixes[0] for r in readers):
            record_suffix = suffix
        else:
            record_suffix = None
        claims = [r for r in readers if suffix in r.suffixes or suffix in r.companions]
        eligible = tuple(r for r in claims if raw or not r.raw)
        needs_sniff = bool(eligible) and not raw and any(r.raw for r in claims)
        rule = _SuffixRule(record_suffix, bool(eligible), eligible if needs_sniff else ())
        _SUFFIX_RULES[(suffix, raw)] = rule
    return rule


def _record_path(path: Path, suffix: str, present: Container[Path] | None) -> Path | None:
    """:func:`record_file` of ``path``, whose lower-case suffix is ``suffix``."""
    main_suffix = _suffix_rule(suffix, False).record_suffix
    if main_suffix is None:
        return None
    main = path if main_suffix == suffix else path.with_suffix(main_suffix)
    return main if (main.is_file() if present is None else main in present) else None


def record_file(path: str | Path, present: Container[Path] | None = None) -> Path | None:
    """The file through which the multi-file record that ``path`` belongs to is read, when it exists:
    ``rec.dat`` -> ``rec.hea``, ``rec.hea`` -> itself. ``None`` for the files of single-file formats and for
    companions without their record file.

    ``present``, when given, is the set of files known to exist (e.g. a folder listing): it replaces a
    look at the disk per file.
    """
    _ensure_loaded()
    path = path if isinstance(path, Path) else Path(path)
    return _record_path(path, path.suffix.lower(), present)


def _sniffs(spec: ReaderSpec, path: Path) -> bool:
    try:
        return bool(spec.sniff(path))
    except (OSError, ValueError):
        return False


def is_record_file(path: str | Path, raw: bool = False, present: Container[Path] | None = None) -> bool:
    """Whether folder search should list ``path`` as a record.

    A companion of an existing record file is not (its record file is); a file whose suffix no reader claims is
    not; raw arrays (``.npy``, ``.csv``, ``.txt``, ...) only with ``raw``, and then every file a reader claims.
    Without ``raw``, a file a reader recognises is listed, and so is one whose suffix only ECG formats use
    (``.xml``, ``.scp``, ``.hea``, ...) even when no reader recognises it, so that its error is reported instead
    of the file being skipped silently; a suffix that raw tables share (``.txt``) is listed only when a reader
    recognises the content. ``present``: as for :func:`record_file`.
    """
    _ensure_loaded()
    path = path if isinstance(path, Path) else Path(path)
    suffix = path.suffix.lower()
    rule = _suffix_rule(suffix, bool(raw))
    if not rule.listed or (rule.record_suffix not in (None, suffix)
                           and _record_path(path, suffix, present) is not None):
        return False  # no reader for it, or a companion whose record file is there (that file is listed)
    if not rule.sniffers:
        return True
    return any(_sniffs(r, path) for r in rule.sniffers)  # only a shared suffix (.txt) costs a look at the content


def listed_record_names(names: Sequence[str], raw: bool = False) -> list[str]:
    """The files of a folder listing that folder search lists as records, in their order.

    The rule of :func:`is_record_file` applied to every name of ``names`` (normalised path strings, e.g. from
    :func:`ecglens.io.paths.walk_file_names`) with the listing as the files known to exist, on strings: a
    folder of 10,000 WFDB records is 20,000 names, and a ``Path`` for each costs more than the rule.
    """
    _ensure_loaded()
    present = set(names)
    out = []
    for name in names:
        base = name[name.rfind(os.sep) + 1:]
        suffix = path_suffix(base)
        rule = _suffix_rule(suffix.lower(), bool(raw))
        if not rule.listed:
            continue
        record_suffix = rule.record_suffix
        if record_suffix not in (None, suffix.lower()) and name[: len(name) - len(suffix)] + record_suffix in present:
            continue  # a companion whose record file is there (that file is listed)
        if not rule.sniffers or any(_sniffs(r, Path(name)) for r in rule.sniffers):
            out.append(name)
    return out


def _candidates(path: Path) -> list[Path]:
    """The path itself plus, for a suffix-less WFDB record name, its ``.hea`` file."""
    out = [path]
    if path.suffix.lower() not in {s for r in _READERS.values() for s in r.suffixes}:
        hea = path.with_name(path.name + ".hea")
        if hea.exists():
            out.insert(0, hea)
    return out


def detect_format(path: str | Path) -> tuple[str, Path]:
    """Find the reader for ``path`` by suffix and content.

    Returns
    -------
    name : str
        The format's registered name.
    path : Path
        The file the reader should open (e.g. ``rec.hea`` for a record given as ``rec`` or ``rec.dat``).
    """
    _ensure_loaded()
    path = path if isinstance(path, Path) else Path(path)
    tried: list[str] = []
    for cand in _candidates(path):
        suffix = cand.suffix.lower()
        for spec in list_readers():
            if suffix not in spec.suffixes:
                continue
            tried.append(spec.name)
            try:
                ok = spec.sniff(cand)
            except OSError:
                ok = False
            if ok:
                return spec.name, cand
    if not path.exists() and not any(c.exists() for c in _candidates(path)):
        raise UnsupportedFormatError(f"{path}: no such file. Check the path (a WFDB record may be given as "
                                     "'NAME', 'NAME.hea' or 'NAME.dat').")
    known = ", ".join(f"{r.name} ({'/'.join(r.suffixes)})" for r in list_readers())
    raise UnsupportedFormatError(
        f"{path}: not a recognised ECG file"
        + (f" (looked like none of: {', '.join(dict.fromkeys(tried))})" if tried else f" (suffix {path.suffix!r})")
        + f". Supported formats: {known}. For a raw array use format='numpy' or 'csv' with fs and leads."
    )


def read_ecg(path: str | Path, format: str | None = None, **kwargs: Any) -> Ecg:
    """Read one ECG record from any supported format.

    Parameters
    ----------
    path : str or Path
        The record file (``rec.hea``, ``rec.dat``, ``rec`` for WFDB; ``x.xml``, ``x.dcm``, ...).
    format : str, optional
        A registered format name (see :func:`list_readers`); default: detected from suffix and content.
    **kwargs
        Passed to the reader (e.g. ``fs=`` and ``leads=`` for raw arrays).

    Returns
    -------
    Ecg
        Signal in mV, canonical lead names, native fs, age/sex when the file has them.
    """
    if format is None:
        format, path = detect_format(path)
    reader = get_reader(format)
    try:
        return reader.read(Path(path), **kwargs)
    except EcglensError:
        raise
    except Exception as err:  # noqa: BLE001 - last resort: readers translate what they expect themselves
        log.debug("reader %s failed on %s", reader.name, path, exc_info=True)
        raise CorruptRecordError(
            f"{path}: the {reader.name} reader could not read this file ({type(err).__name__}: {err}). The file is "
            "probably damaged or an unusual variant of its format; export the record again, and report it if "
            "other software reads it."
        ) from err


_LOADED = False


def _ensure_loaded() -> None:
    """Import the reader modules so their ``@register_reader`` decorators run.

    The registry counts as loaded only once every module imported; a module that fails raises ``ImportError``
    naming it (and is tried again on the next call), never a silently partial registry.
    """
    global _LOADED
    if _LOADED:
        return
    from .. import io as io_pkg

    import_submodules(io_pkg.__name__, io_pkg.__path__, skip={"registry"}, kind="reader")
    _LOADED = True
