"""Prediction on any ECG: checkpoint -> bring the input to the model's contract -> predictions.

A checkpoint declares its input contract (:class:`~ecglens.signal.transforms.Preprocess`: fs, duration, leads,
filters, normalisation). :class:`Predictor` brings any recording to it, and says what it did in ``flags``:

* **leads** — reordered; III, aVR, aVL, aVF derived from I and II when missing (``derived:III,aVR,aVL,aVF``);
  a record lacking other needed leads is refused (:class:`LeadError`);
* **units** — plain microvolts (or raw counts at 1000 counts/mV: the same numbers) or volts are converted to mV
  (``unit_converted:uV->mV``); amplitudes no power of ten makes plausible are refused (:class:`UnitError`);
* **sampling rate** — resampled from any rate >= 50 Hz (``resampled:500->100``);
* **length** — a short record is padded (``padded``); a long one is cut into windows covering it evenly
  (overlapping when its length is not a multiple of the window), predicted window by window and averaged, with
  the SD across windows as ``window_spread``; parts no window covers are reported as ``cropped``;
* **quality** — flat, noisy, saturated and NaN-containing leads are flagged (``flat:V3``), not refused.

Batch prediction (:meth:`Predictor.predict_paths`) reads and harmonises records in a pool of worker processes
(chunked, a bounded number of chunks in flight); on the CPU each worker also runs the model on its chunk (each
its own copy, one thread), elsewhere (a GPU, explicit threads) the model runs in the parent on batches. Signals
are streamed, never all held. A bad file gives an ``error`` row with its reason; it never stops the job.

The model runs through a pluggable :class:`Backend` (``run(x [N, L, T] float32) -> raw outputs``), chosen by
name from a registry (:func:`register_backend`): ``"torch"``, and ``"onnx"`` (:mod:`~ecglens.predict.onnx`,
imported on first use, so onnxruntime is needed only for it).

Modules: :mod:`~ecglens.predict.backends` (the backend registry), :mod:`~ecglens.predict.harmonise`
(:class:`InputAdapter`: one record to the contract), :mod:`~ecglens.predict.records` (files and folders ->
records), :mod:`~ecglens.predict.workers` (reading processes of batch jobs), :mod:`~ecglens.predict.predictor`
(:class:`Predictor`). Windows are planned by :func:`ecglens.artifact.plan_windows`.

>>> p = Predictor.from_pretrained("age-sex")                     # doctest: +SKIP
>>> p.predict_file("rec.hea").outputs                            # doctest: +SKIP
{'age': 57.3, 'age_std': 8.1, 'p_female': 0.82}
>>> table = p.predict_paths(["folder_of_ecgs/"], workers=2)      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..artifact.windows import DEFAULT_MAX_WINDOWS, WINDOW_TOLERANCE, plan_windows
from ..exceptions import ConfigError
from .backends import Backend, TorchBackend, cores_left, create_backend, list_backends, register_backend
from .harmonise import InputAdapter, PreparedEcg
from .predictor import BASE_COLUMNS, Prediction, Predictor
from .records import find_records, read_record, record_key, unpacked_archives

__all__ = ["BASE_COLUMNS", "DEFAULT_MAX_WINDOWS", "WINDOW_TOLERANCE", "Backend", "InputAdapter", "Prediction",
           "Predictor", "PreparedEcg", "TorchBackend", "cores_left", "create_backend", "find_records",
           "list_backends", "plan_windows", "read_record", "record_key", "register_backend", "unpacked_archives"]


def _onnx_backend(checkpoint: Any, **options: Any) -> Backend:
    """The ``"onnx"`` backend (:func:`ecglens.predict.onnx.onnx_backend`), imported on first use."""
    try:
        from .onnx import onnx_backend
    except ImportError as err:
        raise ConfigError(f"the onnx backend could not be imported ({err}). Install it with "
                          '`pip install "ecglens[export]"`.') from None
    return onnx_backend(checkpoint, **options)


register_backend("onnx", _onnx_backend)
