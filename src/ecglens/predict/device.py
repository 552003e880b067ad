"""Where the model runs: check a torch device name before anything is loaded on it.

``--device`` of ``ecglens predict``, ``evaluate`` and ``serve`` (and ``device=`` of
:meth:`ecglens.predict.Predictor.from_pretrained`) takes ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``
(the first GPU when torch sees one, else ``cpu``). :func:`resolve_device` turns that into a device torch can use,
or raises a :class:`~ecglens.exceptions.ConfigError` that says what is wrong and how to fix it: a CPU-only build
of torch (the default of ``pip install torch`` on some platforms and of the Makefile) names the pip command that
installs a CUDA build; a CUDA build on a machine without a visible GPU, or ``cuda:3`` on a two-GPU machine,
says so.

>>> resolve_device("auto")                # doctest: +SKIP
'cpu'
>>> resolve_device("cuda")                # on a CPU-only build of torch             # doctest: +SKIP
ConfigError: --device cuda needs a CUDA build of torch, but this one (2.13.0+cpu) is CPU-only. ...
"""

from __future__ import annotations

import re

from ..exceptions import ConfigError

__all__ = ["CUDA_INSTALL", "DEVICE_CHOICES", "cuda_problem", "resolve_device", "torch_build"]

#: the torch version ecglens is built and tested with (the Makefile's TORCH_VERSION)
TORCH_VERSION = "2.13.0"
#: how to replace a CPU-only torch with a CUDA build (then install ecglens, whose pip keeps that torch)
CUDA_INSTALL = (f"pip install torch=={TORCH_VERSION} --index-url https://download.pytorch.org/whl/cu128 "
                "(pick the cuXYZ your NVIDIA driver supports, see https://pytorch.org/get-started/locally/), "
                "then pip install ecglens")
#: what ``--device`` accepts (``cuda:N`` for any N)
DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "mps", "auto")

_DEVICE_RE = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def torch_build() -> str:
    """The installed torch, e.g. ``"2.13.0+cpu"`` or ``"2.13.0+cu128 (CUDA 12.8)"``."""
    import torch

    cuda = getattr(torch.version, "cuda", None)
    return f"{torch.__version__}" + (f" (CUDA {cuda})" if cuda else "")


def cuda_problem(what: str, index: int | None = None, cpu_option: str = "--device cpu") -> str | None:
    """Why ``what`` (``"--device cuda"``, ``"--accelerator gpu"``) cannot run on CUDA here, or None when it can.

    Parameters
    ----------
    what : str
        The option as the user wrote it, for the message.
    index : int, optional
        A GPU index that must exist (``cuda:1`` -> 1); for several devices, the highest index needed.
    cpu_option : str
        The option that runs on the CPU instead, for the message.
    """
    import torch

    if getattr(torch.version, "cuda", None) is None and getattr(torch.version, "hip", None) is None:
        return (f"{what} needs a CUDA build of torch, but the installed torch ({torch_build()}) is CPU-only. "
                f"Install a CUDA build: {CUDA_INSTALL}. Or run on the CPU ({cpu_option}).")
    if not torch.cuda.is_available():
        return (f"{what}: torch is a CUDA build ({torch_build()}) but sees no GPU (torch.cuda.is_available() is "
                "False). Check that `nvidia-smi` lists a GPU, that the NVIDIA driver supports this CUDA version, "
                f"and that CUDA_VISIBLE_DEVICES does not hide it; or run on the CPU ({cpu_option}).")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        return (f"{what}: GPU {index} does not exist; torch sees {count} GPU(s), numbered 0 to {count - 1} "
                "(CUDA_VISIBLE_DEVICES renumbers them).")
    return None


def resolve_device(device: str | None = "cpu") -> str:
    """Check a device name and return the torch device to use.

    Parameters
    ----------
    device : str or None
        ``"cpu"`` (also for None or ``""``), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (``"cuda"`` when
        torch sees a GPU, else ``"mps"`` on Apple silicon, else ``"cpu"``). Case-insensitive.

    Returns
    -------
    str
        A device string torch accepts: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.

    Raises
    ------
    ConfigError
        An unknown name, a CUDA device on a CPU-only torch (the message gives the pip command for a CUDA
        build), on a machine without a visible GPU, or a GPU index that does not exist; ``mps`` where it is not
        available.
    """
    text = (device or "cpu").strip().lower()
    if text == "cpu":  # without importing torch: an exported (ONNX) model runs without it
        return "cpu"
    import torch

    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    match = _DEVICE_RE.match(text)
    if match is None:
        raise ConfigError(f"unknown device {device!r}; use one of {', '.join(DEVICE_CHOICES)} "
                          "(e.g. --device cuda:1 for the second GPU).")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return "cpu"
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("--device mps needs Apple silicon and a torch build with MPS; this machine or build "
                              "has none. Use --device cpu (or cuda on an NVIDIA GPU).")
        return "mps"
    problem = cuda_problem(f"--device {text}", None if index is None else int(index))
    if problem is not None:
        raise ConfigError(problem)
    return text
