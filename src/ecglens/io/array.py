"""Raw-array readers: NumPy ``.npy`` / ``.npz`` and delimited text (``.csv``, ``.tsv``, ``.txt``).

A raw array carries no sampling rate, usually no lead names and no units, so the caller states them::

    read_ecg("x.npy", fs=500)                                  # 12 rows or columns -> the 12 canonical leads
    read_ecg("x.npy", fs=500, leads=["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], units="uV")
    read_ecg("x.csv", fs=250)                                  # header row of lead names is used
    read_ecg("x.npz", fs=500, key="ecg", layout="samples_first")

Rules (documented, never guessed beyond them):

* ``fs`` is required: :class:`~ecglens.exceptions.SamplingRateError` when missing.
* ``units``: ``"mV"`` (default), ``"uV"`` (also ``"µV"``, ``"microvolts"``) or ``"V"``; values are converted
  to mV.
* Lead names: ``leads=`` when given; else a CSV header row of lead names (any spelling, ``avr`` -> ``aVR``; a
  first column named ``time``/``t``/``sample``/``index`` is dropped); else, only when one dimension of the
  array is 12, the 12 canonical leads ``I, II, III, aVR, aVL, aVF, V1-V6`` in that order. Anything else raises
  :class:`~ecglens.exceptions.LeadError` asking for ``leads=``.
* Orientation: ``layout="leads_first"`` ([leads, samples]) or ``"samples_first"`` ([samples, leads]); by default
  the dimension whose length equals the number of leads is the lead dimension (a CSV header means columns are
  leads). A square array with no ``layout`` is refused as ambiguous.
* ``.npz``: the array named ``key``; default the only array, else the first of ``signal``, ``ecg``, ``x``,
  ``data``. Files are loaded with ``allow_pickle=False``: object arrays are refused, never unpickled.
* The result is in canonical lead order; III, aVR, aVL, aVF are derived from I and II when missing.
"""

from __future__ import annotations

import io
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..ecg import Ecg, check_recorded_fs, check_recorded_signal, code_to_sex
from ..exceptions import (
    ConfigError,
    CorruptRecordError,
    EcglensError,
    LeadError,
    SamplingRateError,
    UnitError,
    UnsupportedFormatError,
)
from ..leads import CANONICAL_LEADS
from ..signal.transforms import fill_nans
from ._vendor import standardise_leads
from .registry import register_reader

__all__ = ["ARRAY_UNITS", "ecg_from_array", "read_delimited", "read_numpy", "sniff_delimited", "sniff_numpy"]

#: ``units=`` spellings (lower-case) -> factor to mV
ARRAY_UNITS: dict[str, float] = {
    "mv": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "\u00b5v": 1e-3,
    "\u03bcv": 1e-3,
    "microvolts": 1e-3,
    "v": 1e3,
    "volts": 1e3,
}
#: ``layout=`` -> whether the array must be transposed to [leads, samples]
_LAYOUTS: dict[str, bool] = {"leads_first": False, "samples_first": True}
_NPZ_KEYS: tuple[str, ...] = ("signal", "ecg", "x", "data")
_TIME_COLUMNS: frozenset[str] = frozenset(
    {"time", "t", "sample", "samples", "index", "idx", "time_s", "time_ms"}
)
_DELIMITERS: dict[str, str | None] = {".tsv": "\t"}
_SNIFF_BYTES = 4096
_NO_FS = (
    "raw arrays carry no sampling rate; pass fs=..., e.g. read_ecg('{path}', fs=500) (and leads=[...] and "
    "units='mV' or 'uV' when they are not the 12 standard leads in mV)."
)


# ---------------------------------------------------------------------------------------------- core
def ecg_from_array(
    array: np.ndarray,
    fs: float | None,
    leads: Sequence[str] | None = None,
    units: str = "mV",
    layout: str | None = None,
    record_id: str = "",
    source: str = "",
    age: float | None = None,
    sex: str | float | None = None,
) -> Ecg:
    """Build an :class:`Ecg` from a 2-D array, following the rules of this module.

    Missing values (NaN, e.g. empty CSV cells) are interpolated per lead, or a mostly-missing lead set to zeros,
    with a :class:`~ecglens.exceptions.SignalQualityWarning` (:func:`ecglens.signal.fill_nans`): an ``Ecg``
    holds finite samples only.

    Parameters
    ----------
    array : np.ndarray, shape (n_leads, n_samples) or (n_samples, n_leads)
        The samples in ``units``; a 1-D array is one lead.
    fs : float
        Sampling rate in Hz (required).
    leads : sequence of str, optional
        Lead names in array order; default the 12 canonical leads when a dimension is 12.
    units : {"mV", "uV", "V"}
        Unit of the values.
    layout : {None, "leads_first", "samples_first"}
        Orientation; default detected from the dimension equal to the number of leads.
    record_id, source : str
        Identifiers stored in the Ecg.
    age : float, optional
        Age in years.
    sex : {"F", "M", 1, 0, None}
        Sex (1 = female, 0 = male, as in ecglens tables).

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] float32 in mV, canonical lead order, limb leads derived when missing.
    """
    if fs is None:
        raise SamplingRateError(_NO_FS.format(path=source or "x.npy"))
    factor = ARRAY_UNITS.get(str(units).strip().lower())
    if factor is None:
        raise UnitError(
            f"units={units!r} is not known; use 'mV', 'uV' or 'V' (the unit of the array's values)."
        )
    x = np.asarray(array)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or x.ndim not in (1, 2):
        raise CorruptRecordError(
            f"{source or 'array'}: expected a numeric 1-D or 2-D array, got dtype {x.dtype} shape {x.shape}."
        )
    x = x[None, :] if x.ndim == 1 else x
    names = tuple(leads) if leads is not None else None
    x = _orient(x, names, layout, source)
    names = names if names is not None else CANONICAL_LEADS
    sex_value = code_to_sex(sex) if isinstance(sex, (int, float)) else sex
    with np.errstate(over="ignore", invalid="ignore"):
        signal = x.astype(np.float64) * factor
    where = source or record_id or "array"
    signal = fill_nans(signal, tuple(map(str, names)), where)
    check_recorded_signal(signal, where, "array")
    ecg = Ecg(
        signal=signal,
        fs=check_recorded_fs(fs, where, "fs"),
        leads=names,
        record_id=record_id,
        age=age,
        sex=sex_value,
        source=source,
        meta={"format": "array", "units_in_file": units},
    )
    return standardise_leads(ecg)


def _orient(x: np.ndarray, leads: tuple[str, ...] | None, layout: str | None, source: str) -> np.ndarray:
    """Return ``x`` as [leads, samples], from ``layout`` or from the dimension equal to the number of leads."""
    if layout is not None:
        if layout not in _LAYOUTS:
            raise ConfigError(f"layout={layout!r} is not one of {sorted(_LAYOUTS)}.")
        x = x.T if _LAYOUTS[layout] else x
        n = len(leads) if leads is not None else len(CANONICAL_LEADS)
        if x.shape[0] != n:
            raise LeadError(
                f"{source or 'array'}: with layout={layout!r} the array has {x.shape[0]} leads but "
                + (
                    f"{n} lead names were given."
                    if leads is not None
                    else "no leads= was given (12 assumed)."
                )
                + " Pass leads=[...] with one name per lead, or the other layout."
            )
        return x
    n = len(leads) if leads is not None else len(CANONICAL_LEADS)
    rows, cols = x.shape
    if rows == n and cols == n and n > 1:
        raise LeadError(
            f"{source or 'array'}: the array is {rows} x {cols}, so which dimension holds the leads is ambiguous; "
            "pass layout='leads_first' or layout='samples_first'."
        )
    if rows == n:
        return x
    if cols == n:
        return x.T
    raise LeadError(
        f"{source or 'array'}: array of shape {x.shape} has no dimension of {n}"
        + (
            f" (the number of lead names given: {list(leads)})."
            if leads is not None
            else " (12 leads assumed)."
        )
        + " Pass leads=[...] naming the rows or columns; the 12 canonical leads are assumed only for a "
        "dimension of 12."
    )


# ---------------------------------------------------------------------------------------------- numpy
def sniff_numpy(path: Path) -> bool:
    """True for a ``.npy`` (magic ``\\x93NUMPY``) or a zip archive (``.npz``)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head.startswith((b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06"))


@register_reader(
    "numpy",
    (".npy", ".npz"),
    sniff=sniff_numpy,
    priority=0,
    description="NumPy .npy/.npz array (needs fs=; leads=, units=, layout= optional)",
)
def read_numpy(
    path: str | Path,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str = "mV",
    layout: str | None = None,
    key: str | None = None,
) -> Ecg:
    """Read an ECG saved as a NumPy array.

    Parameters
    ----------
    path : str or Path
        ``.npy`` file, or ``.npz`` archive (see ``key``).
    fs : float
        Sampling rate in Hz (required: arrays carry none).
    leads, units, layout
        See :func:`ecg_from_array`.
    key : str, optional
        Name of the array inside an ``.npz``.

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] in mV, canonical lead order.
    """
    path = Path(path)
    if fs is None:
        raise SamplingRateError(_NO_FS.format(path=path))
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                array = _pick_npz(loaded, key, path)
        else:
            array = loaded
    except EcglensError:
        raise
    # np.load parses a .npy header with the tokenizer and ast; an .npz is a zip archive (a damaged one can claim a
    # zip version or compression method that zipfile does not support: NotImplementedError)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error,
            NotImplementedError) as err:
        raise CorruptRecordError(
            f"{path}: cannot load the array ({err}). Only plain numeric arrays are read (allow_pickle=False); "
            "save with np.save / np.savez from a numeric array."
        ) from err
    return ecg_from_array(array, fs, leads, units, layout, record_id=path.stem, source=str(path))


def _pick_npz(archive: np.lib.npyio.NpzFile, key: str | None, path: Path) -> np.ndarray:
    """The array named ``key``, the only array, or the first of the usual names."""
    names = list(archive.files)
    if key is None:
        key = names[0] if len(names) == 1 else next((k for k in _NPZ_KEYS if k in names), None)
    if key is None or key not in names:
        raise UnsupportedFormatError(
            f"{path}: the archive holds arrays {names}; pass key=<name> to say which one is the ECG"
            + (f" ({key!r} is not among them)." if key is not None else ".")
        )
    return archive[key]


# ---------------------------------------------------------------------------------------------- text
def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str | None) -> list[str]:
    return [t.strip() for t in (line.split(delimiter) if delimiter else line.split())]


def _guess_delimiter(line: str, suffix: str) -> str | None:
    """Delimiter of a text table: by suffix (``.tsv``), else the first of , tab ; in the line, else whitespace."""
    if suffix in _DELIMITERS:
        return _DELIMITERS[suffix]
    return next((d for d in (",", "\t", ";") if d in line), None)


def sniff_delimited(path: Path) -> bool:
    """True for a text file whose first data lines are numbers separated by a delimiter (header allowed)."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = [
        ln for ln in text.splitlines()[:-1] or text.splitlines() if ln.strip() and not ln.startswith("#")
    ]
    if not lines or lines[0].lstrip().startswith(("<", "{", "[")):
        return False
    delimiter = _guess_delimiter(lines[0], path.suffix.lower())
    data = lines[1:3] if not all(map(_is_number, _split(lines[0], delimiter))) else lines[:2]
    return bool(data) and all(all(map(_is_number, _split(ln, delimiter))) for ln in data)


@register_reader(
    "csv",
    (".csv", ".tsv", ".txt"),
    sniff=sniff_delimited,
    priority=0,
    description="CSV/TSV/text table of samples (needs fs=; header row of lead names used when present)",
)
def read_delimited(
    path: str | Path,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str = "mV",
    layout: str | None = None,
    delimiter: str | None = None,
) -> Ecg:
    """Read an ECG stored as a delimited text table.

    Parameters
    ----------
    path : str or Path
        ``.csv`` / ``.tsv`` / ``.txt``; lines starting with ``#`` are comments.
    fs : float
        Sampling rate in Hz (required: tables carry none).
    leads : sequence of str, optional
        Lead names in column (or row) order; overrides a header row.
    units, layout
        See :func:`ecg_from_array`. A header row of lead names implies ``layout="samples_first"``.
    delimiter : str, optional
        Column separator; default tab for ``.tsv``, else the first of ``,`` tab ``;`` found, else whitespace.

    Returns
    -------
    Ecg
        ``signal`` [n_leads, n_samples] in mV, canonical lead order.
    """
    path = Path(path)
    if fs is None:
        raise SamplingRateError(_NO_FS.format(path=path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise CorruptRecordError(f"{path}: not a UTF-8 text table ({err}); save the table as UTF-8 text.") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and ln[0] != "#"]
    if not lines:
        raise CorruptRecordError(f"{path}: the file has no data rows; expected a table of numbers.")
    delimiter = delimiter or _guess_delimiter(lines[0], path.suffix.lower())
    header = _split(lines[0], delimiter)
    has_header = not all(map(_is_number, header))
    try:
        table = np.loadtxt(io.StringIO("\n".join(lines[has_header:])), delimiter=delimiter, ndmin=2)
    except ValueError as err:
        raise CorruptRecordError(
            f"{path}: not a table of numbers ({err}). Each row must hold the same number of "
            f"{delimiter or 'whitespace'!r}-separated values (one optional header row of lead names)."
        ) from err
    if has_header:
        keep = [i for i, name in enumerate(header) if name.lower() not in _TIME_COLUMNS]
        if len(header) != table.shape[1]:
            raise CorruptRecordError(
                f"{path}: the header has {len(header)} names but the rows have {table.shape[1]} values."
            )
        table = table[:, keep]
        if leads is None:
            leads, layout = [header[i] for i in keep], layout or "samples_first"
    ecg = ecg_from_array(table, fs, leads, units, layout, record_id=path.stem, source=str(path))
    return ecg.replace(meta={**ecg.meta, "format": "csv", "header": has_header})
