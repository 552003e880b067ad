"""Check ``trainer.accelerator`` / ``trainer.devices`` before a run starts (``ecglens train --accelerator gpu``).

Lightning reports a GPU request on a CPU-only torch with a long traceback deep inside ``Trainer``;
:func:`check_accelerator` turns it into a :class:`~ecglens.exceptions.ConfigError` that says how to install a
CUDA build of torch (see :mod:`ecglens.predict.device`), before the run folder is created. Multi-GPU and
multi-node training stay Lightning's (DDP): this only checks that the GPUs asked for exist on this node.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import ConfigError
from ..predict.device import cuda_problem

__all__ = ["check_accelerator"]

_GPU = ("gpu", "cuda")


def check_accelerator(accelerator: str, devices: Any = "auto") -> None:
    """Raise a clear error when ``accelerator`` asks for a GPU this torch build or machine cannot give.

    Parameters
    ----------
    accelerator : str
        ``trainer.accelerator``: ``cpu``, ``gpu``/``cuda``, ``mps``, ``auto`` (always fine) or any other
        Lightning accelerator (left to Lightning).
    devices : int, str or list
        ``trainer.devices``: a count (``2``), ``"auto"``/``-1``, or a list of GPU indices (``[0, 2]``).

    Raises
    ------
    ConfigError
        A GPU accelerator on a CPU-only torch (the message gives the pip command for a CUDA build), on a
        machine without a visible GPU, or more / other GPUs than the machine has; ``mps`` where it is missing.
    """
    kind = str(accelerator).strip().lower()
    if kind == "mps":
        import torch

        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("--accelerator mps needs Apple silicon and a torch build with MPS; use cpu or gpu.")
        return
    if kind not in _GPU:
        return
    highest = None
    if isinstance(devices, int) and devices > 0:
        highest = devices - 1
    elif isinstance(devices, str) and devices.strip().isdigit() and int(devices) > 0:
        highest = int(devices) - 1
    elif isinstance(devices, (list, tuple)) and devices:
        highest = max(int(d) for d in devices)
    problem = cuda_problem(f"--accelerator {accelerator}", highest, cpu_option="--accelerator cpu")
    if problem is not None:
        raise ConfigError(problem)
