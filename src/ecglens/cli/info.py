"""``ecglens info PATH``: what one ECG record, a prepared cache or a model checkpoint holds.

Examples::

    ecglens info data/georgia/E07500.hea        # one record: fs, leads, length, age, sex, quality flags
    ecglens info cache/ptbxl100 --json          # a cache made by `ecglens prepare`: counts, folds, labels
    ecglens info age-sex                        # a shipped model (or any .safetensors): contract, outputs, metrics
    ecglens info export.zip                     # every record of a .zip / .tar / .tar.gz archive, or its error
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..jsonutil import json_ready

__all__ = ["archive_info", "record_info", "register", "run_info"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``info`` to the ``ecglens`` parser."""
    p = sub.add_parser("info", help="summarise one ECG record or a prepared cache",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, metavar="PATH",
                   help="an ECG file (any supported format), an archive of them (.zip, .tar, .tar.gz), a cache "
                        "folder, a .safetensors checkpoint or the name of a shipped model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--format", default=None, help="force a reader (see the list of formats); default: detect")
    p.set_defaults(func=run_info)


def _quality(ecg: Any) -> dict[str, Any]:
    """Quality of the record from :func:`ecglens.signal.quality.assess_quality` (when the module exists).

    ``quality`` is one line (``"ok"`` or ``"flat:V3, noisy:II"``); ``quality_report`` the full report (JSON only).
    """
    try:
        from ..signal.quality import assess_quality
    except ImportError:
        return {}
    report = assess_quality(ecg)
    return {"quality": report.summary(), "quality_report": report.to_dict()}


def record_info(path: Path, format: str | None = None) -> dict[str, Any]:
    """Summary of one record: ``Ecg.summary()``, the quality flags and the short scalar metadata."""
    from ..io import read_ecg

    ecg = read_ecg(path, format=format)
    info = dict(ecg.summary())
    info.update(_quality(ecg))
    scalar = (str, int, float, bool)
    for key, value in ecg.meta.items():
        short = isinstance(value, scalar) or (isinstance(value, (list, tuple)) and len(value) <= 8
                                              and all(isinstance(v, scalar) for v in value))
        if short and len(str(value)) <= 200 and key not in info:
            info[f"meta_{key}"] = list(value) if isinstance(value, tuple) else value
    return json_ready(info)


def archive_info(path: Path, format: str | None = None) -> dict[str, Any]:
    """Summary of every record in an archive (unpacked into a temporary folder, removed on return).

    Returns ``{"archive", "n_records", "n_error", "records"}``; each record is :func:`record_info` with its
    name (``ARCHIVE/MEMBER``) first, or ``{"record", "error"}`` when it cannot be read.
    """
    from ..exceptions import EcglensError
    from ..predict.records import archive_names, find_records, unpacked_archives

    records: list[dict[str, Any]] = []
    with unpacked_archives():
        for name, target in find_records(path):
            try:
                info = {k: archive_names(v) if isinstance(v, str) else v
                        for k, v in record_info(target, format=format).items() if k != "record"}
                records.append({"record": name, **info})
            except EcglensError as err:
                records.append({"record": name, "error": archive_names(str(err))})
    n_error = sum("error" in r for r in records)
    return {"archive": str(path), "n_records": len(records), "n_error": n_error, "records": records}


def _checkpoint_info(path: Path) -> dict[str, Any]:
    """Summary of a checkpoint file or shipped model name (weights are loaded to count parameters)."""
    from ..artifact import load_model_file

    ckpt = load_model_file(path)  # a .safetensors checkpoint, a shipped name or an exported .onnx file
    info = ckpt.summary()
    int8 = ((ckpt.meta or {}).get("onnx") or {}).get("int8")
    if int8:
        info["int8"] = (f"{int8['method']}; calibrated on {int8['calibration']}"
                        + (f"; {int8['metrics_note']}" if int8.get("metrics_note") else ""))
    pre = info.get("preprocess")
    if pre:
        info["input"] = (f"{pre['fs']:g} Hz x {pre['seconds']:g} s, leads {','.join(pre['leads'])}, high-pass "
                         f"{pre.get('highpass_hz')} Hz, notch {pre.get('notch_hz')}, normalize {pre.get('normalize')}")
    info["metrics"] = {k: _rounded(v) for k, v in info["metrics"].items()}
    cal = info.get("calibration")
    if cal:
        info["calibration"] = {k: _rounded(v) for k, v in cal.items()}
    return json_ready(info)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def checkpoint_lines(info: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint summary for the table: metrics as ``value [CI]`` and the calibration in one line each."""
    shown = dict(info)
    metrics = dict(info.get("metrics") or {})
    shown["metrics"] = {k: (f"{v} {metrics[k + '_ci']}" if f"{k}_ci" in metrics else v)
                        for k, v in metrics.items() if not k.endswith("_ci")} or None
    from ..artifact.calibration import Calibration

    cal = Calibration.from_dict(info.get("calibration"))
    if "calibration" in info:
        shown["calibration"] = (
            "none (outputs are the model's own; fit one with `ecglens calibrate`)" if cal is None else cal.describe())
    return shown


def _is_checkpoint(path: Path) -> bool:
    from ..artifact import ONNX, SAFETENSORS, list_pretrained, model_format, pretrained_aliases

    return model_format(path) in (SAFETENSORS, ONNX) or (
        not path.exists() and str(path) in {*list_pretrained(), *pretrained_aliases()})


def _cache_info(path: Path) -> dict[str, Any]:
    """Summary of a cache folder (raises a clear error when it is incomplete)."""
    from ..data.cache import open_cache

    return json_ready(open_cache(path).summary())


#: fields shown with ``--json`` only (they have a one-line form in the table)
_JSON_ONLY = ("quality_report", "preprocess")


def _print_table(info: Mapping[str, Any]) -> None:
    """One ``key  value`` line per field; nested mappings on one line."""
    info = {k: v for k, v in info.items() if k not in _JSON_ONLY}
    width = max(len(k) for k in info) if info else 0
    for key, value in info.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        print(f"{key:<{width}}  {'-' if value is None or value == '' else value}")


def _print_archive(info: Mapping[str, Any]) -> None:
    """The archive's counts, then each record's table (or its error), separated by blank lines."""
    _print_table({k: v for k, v in info.items() if k != "records"})
    for record in info["records"]:
        print()
        _print_table(record)


def run_info(args: argparse.Namespace) -> int:
    """Handler of ``ecglens info``; returns the exit code."""
    from ..data.cache import CACHE_FILES
    from ..exceptions import ConfigError
    from ..io.archive import is_archive

    path: Path = args.path
    if path.is_dir():
        if not any((path / name).exists() for name in CACHE_FILES):
            raise ConfigError(f"{path} is a folder but not an ecglens cache; give one record file "
                              "(e.g. NAME.hea) or a folder made by `ecglens prepare`.")
        info = _cache_info(path)
    elif _is_checkpoint(path):
        info = _checkpoint_info(path)
        if not args.json:
            _print_table(checkpoint_lines(info))
            return 0
    elif path.is_file() and is_archive(path):
        info = archive_info(path, format=args.format)
    else:
        info = record_info(path, format=args.format)
    if args.json:
        print(json.dumps(json_ready(info, default=str), indent=2, allow_nan=False))
    elif "records" in info and "archive" in info:
        _print_archive(info)
    else:
        _print_table(info)
    return 0 if not info.get("records") or info["n_error"] < info["n_records"] else 1
