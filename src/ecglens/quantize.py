"""Int8 ONNX files: static post-training quantization of an exported model with onnxruntime.

:func:`quantize_onnx` turns an ``.onnx`` file written by :func:`ecglens.export.export_onnx` into one whose
convolutions and matrix products run in int8 (onnxruntime's static quantization, QDQ format: weights int8 per
output channel, activations uint8, their ranges set by the 99.999th percentile of each activation over
calibration windows). The file keeps the source's metadata (input contract, task, calibration), plus an
``int8`` entry saying how it was quantized, so ``ecglens predict --model FILE.onnx``, ``ecglens evaluate FILE.onnx``
and ``ecglens serve`` use it like any exported file.

Calibration windows (:func:`calibration_windows`) are model inputs from a prepared cache: records of the given
folds cut into the model's windows. Use data the model will not be judged on (PTB-XL: the training folds 1-8);
no label is read. Quantization changes the outputs: measure what it costs with ``ecglens evaluate FILE.onnx`` on
validation data before using it (docs/scale.md, "Int8").

    ecglens export age-sex-fast --onnx fast-int8.onnx --int8 cache/ptbxl100 --int8-folds 1-8
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .artifact.onnx import INPUT_NAME, META_KEY
from .artifact.windows import plan_windows
from .exceptions import ConfigError

__all__ = ["PERCENTILE", "calibration_windows", "quantize_onnx", "split_records"]

#: activation ranges: this percentile of each activation's absolute values over the calibration windows
PERCENTILE = 99.999


def split_records(cache: Any, folds: Any = None, n_records: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random sets of up to ``n_records`` record indices of ``folds`` (seeded): one to calibrate
    the quantization on, one to check it on."""
    idx = cache.indices(folds)
    if idx.size == 0:
        raise ConfigError(f"no records in folds {folds} of the cache; choose folds the cache has.")
    order = np.random.default_rng(seed).permutation(idx)
    n = min(int(n_records), (idx.size + 1) // 2)
    return np.sort(order[:n]), np.sort(order[n:2 * n])


def calibration_windows(cache: Any, n_samples: int, folds: Any = None, n_records: int = 512,
                        seed: int = 0, records: np.ndarray | None = None) -> np.ndarray:
    """Model inputs for quantization: ``n_records`` records of ``folds`` of a prepared cache, cut into windows.

    Parameters
    ----------
    cache : PreparedCache
        ``open_cache(...)``: its records already follow the model's input contract.
    n_samples : int
        The model's window length (``preprocess.n_samples``); longer records give several windows, placed as
        ``ecglens predict`` places them.
    folds : int, str or list, optional
        Folds to draw from (default: every record).
    n_records : int
        Records drawn (at random, without replacement, seeded).
    seed : int
        Seed of the draw.
    records : np.ndarray of int, optional
        Use these record indices instead of a draw (e.g. from :func:`split_records`).

    Returns
    -------
    np.ndarray, float32, shape (n_windows, leads, n_samples)
    """
    picked = split_records(cache, folds, n_records, seed)[0] if records is None else np.sort(records)
    x = np.asarray(cache.signals[picked], dtype=np.float32)
    if x.shape[-1] < n_samples:
        raise ConfigError(f"the cache's records have {x.shape[-1]} samples, fewer than the model's {n_samples}; "
                          "prepare the cache with the model's input contract.")
    starts, _ = plan_windows(x.shape[-1], int(n_samples), max_windows=None)
    return np.concatenate([x[..., s:s + int(n_samples)] for s in starts])


#: windows per calibration batch
_BATCH = 64


def _used(n_windows: int) -> int:
    """Calibration windows used: equal batches only (onnxruntime's percentile calibrator stacks them), so the
    last partial batch is left out."""
    batch = min(_BATCH, n_windows)
    return n_windows // batch * batch


class _Reader:
    """onnxruntime's calibration data reader over windows, in equal batches."""

    def __init__(self, windows: np.ndarray) -> None:
        batch = min(_BATCH, len(windows))
        self._batches = iter([{INPUT_NAME: windows[i:i + batch]} for i in range(0, _used(len(windows)), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_onnx(source: str | os.PathLike[str], out: str | os.PathLike[str], windows: np.ndarray,
                  calibration_note: str = "") -> Path:
    """Write an int8 copy of an exported ``.onnx`` file (see the module docstring).

    Parameters
    ----------
    source : path
        A float ``.onnx`` file written by :func:`ecglens.export.export_onnx`.
    out : path
        The int8 file to write (atomically).
    windows : np.ndarray, float32, shape (N, leads, n_samples)
        Calibration inputs (:func:`calibration_windows`), at least 16; used in batches of 64 (a last partial
        batch is left out; the file records how many were used).
    calibration_note : str
        Where the windows came from, stored in the file's ``int8`` entry.

    Returns
    -------
    Path
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    windows = np.ascontiguousarray(windows, dtype=np.float32)
    if windows.ndim != 3 or len(windows) < 16:
        raise ConfigError(f"quantization needs at least 16 calibration windows [N, leads, samples], got shape "
                          f"{windows.shape}.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    source_proto = onnx.load(str(source))
    with tempfile.TemporaryDirectory(prefix="ecglens-int8-") as tmp:
        pre, quantized = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints its histogram settings
            quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(quantized), _Reader(windows), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": PERCENTILE})
        proto = onnx.load(str(quantized))
    info = {"method": "onnxruntime static quantization, QDQ: int8 weights per output channel, uint8 activations, "
                      f"ranges at the {PERCENTILE}th percentile of the calibration windows",
            "calibration": calibration_note, "n_windows": _used(len(windows)),
            "metrics_note": "the stored metrics are the float model's; measure this file with `ecglens evaluate`"}
    del proto.metadata_props[:]
    for prop in source_proto.metadata_props:
        value = prop.value
        if prop.key == META_KEY:
            doc = json.loads(value)
            doc.setdefault("onnx", {})["int8"] = info
            value = json.dumps(doc)
        proto.metadata_props.add(key=prop.key, value=value)
    proto.metadata_props.add(key="int8", value=json.dumps(info))
    proto.doc_string = source_proto.doc_string + " (int8)"
    tmp_out = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        onnx.save(proto, str(tmp_out))
        os.replace(tmp_out, out)
    finally:
        tmp_out.unlink(missing_ok=True)
    return out
