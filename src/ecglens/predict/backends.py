"""Prediction backends: what runs the model on inputs already in its contract.

A backend is any object with ``run(x [N, L, T] float32) -> raw outputs [N, K]``, built by name from a registry
(:func:`register_backend`): ``"torch"`` here, ``"onnx"`` (:mod:`ecglens.predict.onnx`) registered by the
package, which imports it when first used, so onnxruntime is needed only for it.

A backend may also have ``for_worker() -> factory or None``: how a forked reading worker builds its own copy
(``factory()``, called in the worker), so that batch prediction runs the model beside the reading
(:class:`ecglens.predict.workers.WorkerModel`); ``None`` (or no such method: e.g. a GPU, or a custom object)
keeps the model in the main process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..artifact.precision import autocast, check_precision
from ..exceptions import ConfigError

__all__ = ["Backend", "TorchBackend", "cores_left", "create_backend", "list_backends", "register_backend",
           "usable_cores"]


@runtime_checkable
class Backend(Protocol):
    """What runs the model: raw outputs from model inputs.

    ``run(x)`` takes ``x`` float32 ``[N, L, T]`` (already in the checkpoint's input contract) and returns the
    raw model outputs ``[N, num_outputs]`` as a numpy array (before ``task.postprocess``).
    """

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        ...


#: most windows x samples per forward pass of the torch backend on CPU (see :meth:`TorchBackend.run`)
CPU_SAMPLES_PER_PASS: int = 32_768
#: factory(checkpoint, **options) -> Backend
BackendFactory = Callable[..., Backend]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory, overwrite: bool = False) -> BackendFactory:
    """Register ``factory(checkpoint, **options) -> Backend`` under ``name`` (e.g. ``"onnx"``).

    Returns the factory, so it can be used as ``register_backend("onnx", OnnxBackend)`` at module level.
    """
    if name in _BACKENDS and not overwrite and _BACKENDS[name] is not factory:
        raise ConfigError(f"a prediction backend named {name!r} is already registered; pass overwrite=True.")
    _BACKENDS[name] = factory
    return factory


def list_backends() -> list[str]:
    """Names of the registered backends."""
    return sorted(_BACKENDS)


def create_backend(name: str, checkpoint: Any, **options: Any) -> Backend:
    """Build the backend ``name`` for ``checkpoint``."""
    if name not in _BACKENDS:
        raise ConfigError(f"unknown prediction backend {name!r}; available: {list_backends()}.")
    return _BACKENDS[name](checkpoint, **options)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a container's cpuset;
    ``os.cpu_count()`` where the platform has no affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cores_left(n_busy: int) -> int:
    """CPU cores (of :func:`usable_cores`) not taken by ``n_busy`` busy reading processes (at least one): what a
    backend should use."""
    return max(1, usable_cores() - int(n_busy))


class TorchBackend:
    """Run ``checkpoint.model`` with PyTorch under ``torch.inference_mode``.

    Parameters
    ----------
    checkpoint : Checkpoint
        A loaded checkpoint (its ``model`` is put in eval mode on ``device``).
    device : str
        Torch device (default ``"cpu"``).
    num_threads : int, optional
        Intra-op threads (``torch.set_num_threads``, process-wide); default: leave torch's setting.
    precision : {"32", "bf16", "16"}
        ``"32"`` (default): float32. ``"bf16"`` / ``"16"``: the forward pass under ``torch.autocast`` with
        bfloat16 / float16 (convolutions and matrix products in 16 bits, weights and outputs float32): faster on
        GPUs and on CPUs with bfloat16 instructions (AVX-512 BF16, AMX), numerically close but not equal to
        ``"32"`` (:mod:`ecglens.artifact.precision`). ``"16"`` needs a GPU.

    Raises
    ------
    ConfigError
        An unknown precision, or ``"16"`` on the CPU.
    """

    def __init__(self, checkpoint: Any, device: str = "cpu", num_threads: int | None = None,
                 precision: str = "32") -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.precision = check_precision(precision, self.device.type)
        self.model = checkpoint.model.to(self.device).eval()
        self.num_threads = int(num_threads) if num_threads else None
        if self.num_threads:
            torch.set_num_threads(self.num_threads)

    @contextmanager
    def sharing_cores(self, n_busy: int) -> Iterator[None]:
        """Use the cores left by ``n_busy`` busy reading processes (at least one) while the context is open.

        Intra-op threads that compete with the readers for the same cores mostly spin: on 2 cores with 2 reading
        workers, one torch thread predicts as fast as two with a third less CPU. Threads set explicitly
        (``num_threads``) or a GPU device are left alone; the previous setting is restored on exit.
        """
        torch = self._torch
        before = torch.get_num_threads()
        share = self.num_threads is None and self.device.type == "cpu" and n_busy > 0
        if share:
            torch.set_num_threads(min(before, cores_left(n_busy)))
        try:
            yield
        finally:
            if share:
                torch.set_num_threads(before)

    def for_worker(self) -> Callable[[], TorchBackend] | None:
        """How a forked reading worker gets its copy: this backend (inherited by the fork) on one intra-op
        thread; None on a GPU or with ``num_threads`` set, where the model stays in the main process."""
        return partial(_on_one_thread, self) if self.device.type == "cpu" and self.num_threads is None else None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs ``[N, num_outputs]`` of ``x`` float32 ``[N, L, T]``.

        On CPU, at most :data:`CPU_SAMPLES_PER_PASS` windows x samples go through the model at once (more spill
        the activations out of the cache: a 10 s, 100 Hz ``resnet1d_ribeiro`` ran 939 windows/s per core in
        batches of 32 and 649 in batches of 64).
        """
        torch = self._torch
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = len(x) if self.device.type != "cpu" else max(1, CPU_SAMPLES_PER_PASS // max(1, x.shape[-1]))
        with torch.inference_mode(), autocast(self.device.type, self.precision):
            parts = [self.model(torch.from_numpy(x[i:i + step]).to(self.device)).float().cpu().numpy()
                     for i in range(0, max(len(x), 1), step)]
        return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _on_one_thread(backend: TorchBackend) -> TorchBackend:
    """In a forked reading worker: the inherited ``backend``, torch set to one intra-op thread (the workers
    share the cores)."""
    backend._torch.set_num_threads(1)
    backend.num_threads = 1
    return backend


register_backend("torch", TorchBackend)
