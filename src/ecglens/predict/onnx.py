"""The ``"onnx"`` prediction backend: an exported model run with onnxruntime on CPU.

For a weightless checkpoint read from an ``.onnx`` file (:func:`ecglens.artifact.onnx.load_onnx_checkpoint`) the
file itself runs; for a ``.safetensors`` checkpoint the model is exported once into a cache folder
(:func:`ecglens.export.cached_onnx`) and that file runs. Outputs equal PyTorch's within ~1e-5.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ONNX, model_format
from ..artifact.onnx import INPUT_NAME, OUTPUT_NAME, onnx_session, read_onnx_metadata
from ..exceptions import CheckpointError, ConfigError, LeadError
from .backends import cores_left

__all__ = ["OnnxBackend", "onnx_backend"]


class OnnxBackend:
    """Run an exported ecglens model with onnxruntime on CPU.

    Parameters
    ----------
    path : path
        An ``.onnx`` file written by :func:`export_onnx`.
    threads : int, optional
        onnxruntime intra-op threads (default: onnxruntime's choice, all cores).

    Attributes
    ----------
    metadata : dict
        The checkpoint document stored in the file (``model``, ``preprocess``, ``task``, ``onnx``, ...).
    in_leads : int
        Leads of the input.
    fixed_length : int or None
        The only accepted length for a fixed-length export, else ``None``.
    """

    name = "onnx"

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.path = Path(path)
        self.metadata = read_onnx_metadata(self.path)
        info = self.metadata["onnx"]
        self.in_leads = int(self.metadata["model"]["in_leads"])
        self.fixed_length = info.get("fixed_length")
        self.dynamic_batch = bool(info["dynamic_batch"])
        self.threads = int(threads) if threads else None
        self._session = onnx_session(self.path, threads)
        self._shared: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"OnnxBackend({str(self.path)!r})"

    @contextlib.contextmanager
    def sharing_cores(self, n_busy: int) -> Iterator[None]:
        """Run on the cores left by ``n_busy`` busy reading processes while the context is open.

        onnxruntime's default pool has one thread per core and spin-waits between operators; beside busy readers
        those threads mostly spin. Inside the context a second session with ``usable cores - n_busy`` threads (at
        least one) and no spinning is used; explicitly set ``threads`` are left alone.
        """
        if self.threads is not None or n_busy <= 0:
            yield
            return
        n = cores_left(n_busy)
        if n not in self._shared:
            self._shared[n] = onnx_session(self.path, n, spin=False)
        own, self._session = self._session, self._shared[n]
        try:
            yield
        finally:
            self._session = own

    def for_worker(self) -> Callable[[], OnnxBackend] | None:
        """How a forked reading worker gets its copy: a new session on one thread, without spinning; None with
        ``threads`` set, where the model stays in the main process."""
        return partial(_worker_copy, self) if self.threads is None else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw model outputs.

        Parameters
        ----------
        x : np.ndarray, shape (N, in_leads, n_samples)
            Model input (already brought to the checkpoint's contract), mV.

        Returns
        -------
        np.ndarray, float32, shape (N, num_outputs)
            Raw outputs, as the PyTorch model returns them.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != self.in_leads:
            raise LeadError(f"{self.path.name} expects input [N, {self.in_leads}, samples], got {x.shape}; bring "
                            "records to the model's contract first (ecglens.Predictor does).")
        if self.fixed_length is not None and x.shape[2] != int(self.fixed_length):
            raise ConfigError(f"{self.path.name} was exported for exactly {self.fixed_length} samples, got "
                              f"{x.shape[2]}. Crop / pad to that length or re-export with dynamic_length=True.")
        if not self.dynamic_batch:
            parts = [self._session.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + 1]})[0] for i in range(len(x))]
            return np.concatenate(parts) if parts else np.zeros((0, self.metadata["model"]["num_outputs"]),
                                                                np.float32)
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _worker_copy(backend: OnnxBackend) -> OnnxBackend:
    """In a forked reading worker: a copy of ``backend`` with its own single-thread session. The inherited
    session stays referenced by ``backend``: destroying a forked copy of a session with a thread pool can hang
    (:class:`~ecglens.predict.workers.WorkerModel`)."""
    own = copy.copy(backend)
    own.threads, own._shared = 1, {}
    own._session = onnx_session(backend.path, 1, spin=False)
    return own


def _check_match(ckpt: Any, backend: OnnxBackend) -> None:
    """Refuse an ONNX file exported from a different model than ``ckpt``."""
    model = backend.metadata.get("model") or {}
    ours = (ckpt.model_name, int(ckpt.in_leads), int(ckpt.task.num_outputs))
    theirs = (model.get("name"), int(model.get("in_leads", -1)), int(model.get("num_outputs", -1)))
    if ours != theirs:
        raise CheckpointError(f"{backend.path.name} holds model {theirs[0]!r} ({theirs[1]} leads, {theirs[2]} "
                              f"outputs) but the checkpoint is {ours[0]!r} ({ours[1]} leads, {ours[2]} outputs). "
                              "Export the ONNX file from this checkpoint (`ecglens export`).")


def onnx_backend(checkpoint: Any, onnx_path: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, opset: int = 17,
                 num_threads: int | None = None, precision: str = "32") -> OnnxBackend:
    """The ``"onnx"`` backend factory (registered with :func:`ecglens.predict.register_backend` by the package).

    Parameters
    ----------
    checkpoint : Checkpoint
        The checkpoint to run (a weightless one from :func:`load_onnx_checkpoint` brings its own file).
    onnx_path : path, optional
        An exported file to use (checked against the checkpoint); default: the checkpoint's own ``.onnx`` path,
        else an on-the-fly export cached by :func:`cached_onnx`.
    cache_dir : path, optional
        Cache folder of on-the-fly exports (default :func:`onnx_cache_dir`).
    opset : int
        Opset of on-the-fly exports.
    num_threads : int, optional
        onnxruntime intra-op threads (the same option name as the torch backend's).
    precision : str
        Only ``"32"``: an exported file runs in the precision it was exported in (``ecglens export --int8``
        for 8 bits); reduced precision by autocast is the torch backend's.
    """
    if str(precision) != "32":
        raise ConfigError(f"precision {precision} applies to the torch backend; an ONNX file runs as exported "
                          "(for 8-bit integers export one with `ecglens export --int8`, or use a shipped -int8 "
                          "model).")
    own = Path(getattr(checkpoint, "path", "") or "")
    if onnx_path is None and model_format(own) is ONNX:
        onnx_path = own
    if onnx_path is None:  # an export needs torch; running an exported file does not (no torch import then)
        from ..export import cached_onnx

        onnx_path = cached_onnx(checkpoint, cache_dir, opset)
    path = Path(onnx_path)
    backend = OnnxBackend(path, threads=num_threads)
    _check_match(checkpoint, backend)
    return backend
