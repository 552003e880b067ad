"""Run 1-D convolutional layers as 2-D ones on channels-last tensors: a faster CPU path, the same weights.

PyTorch hands a 1-D convolution to oneDNN as a 2-D one of height 1 in the channels-first layout
(``[batch, channels, 1, time]``). For the shipped ``resnet1d_ribeiro`` networks oneDNN is much faster on the
channels-last layout (``[batch, 1, time, channels]`` in memory), above all for the long, wide feature maps of the
first block and for depthwise and pointwise convolutions: the shipped ``age-sex`` network took 0.60 and 0.52 ms
per 4-s window this way against 0.95 and 0.66 ms on the 1-D layers (two runs of ``python
benchmarks/bench_layout.py``: one thread, batches of 81 windows, 2026-12-07). A 3-D tensor cannot carry that
layout through the layers, so the path keeps a ``[batch, channels, 1, time]`` channels-last tensor from the first
layer to the pooling and runs each layer with the 2-D functional op on a view of its own 1-D weights (no copy,
nothing cached: a weight update is seen at once).

Used where it changes nothing but the speed: on a CPU, for batches of at least :data:`MIN_SAMPLES` samples (a single
ECG's three windows run faster on the 1-D layers), not while scripting or tracing with TorchScript; in inference
(eval mode, gradients off) with the batch norms that follow a convolution folded into it, in training with the batch
norms as ``BatchNorm1d`` runs them (batch statistics, running statistics updated). A training step of the
``age-sex`` / ``age-sex-plain`` architectures (batch 128, AdamW, 2 threads) took 0.76x / 0.85x the time in float32
and 0.95x / 0.88x in bfloat16 (``python benchmarks/bench_layout.py --model age-sex --model age-sex-plain --train
--batch 128 --threads 2 --calls 3 --rounds 3``, and with ``--bf16``; 2026-12-07); ``tests/models/test_layout.py``
holds its gradients to 1e-4 of a float64 computation. Dropout masks are drawn in the channels-last order, so a
training run is not bit-identical to one on the 1-D layers. An ONNX export (:func:`ecglens.export.export_onnx`, on
the CPU) takes it too: the graph then holds 2-D convolutions with the batch norms folded, which onnxruntime's CPU
kernels run faster (the float ``age-sex`` network 2,032 against 968 windows/s, one thread, batches of 81: ``python
benchmarks/bench_export.py --checkpoint age-sex --threads 1 --batch-size 81`` on this code and on d96c7d5); int8
files gain nothing from it (docs/benchmarks.md). The outputs equal those of the 1-D path up to float rounding (the
order of the sums changes: about 2e-6 of a logit).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own convention
from torch import nn

__all__ = ["ENABLED", "MIN_SAMPLES", "SUPPORTED", "channels_last_path", "conv_bn_2d", "run_2d", "supported",
           "to_2d"]

#: False turns the path off everywhere (for benchmarks and tests that compare the two paths)
ENABLED: bool = True
#: the path runs for inputs of at least this many samples in all (batch x time): below it the 1-D layers are
#: faster. ``python benchmarks/bench_layout.py --model age-sex --batch B --rounds 5 --calls 20`` (one thread,
#: 2026-12-07), ms per 4-s window on the 1-D layers against this path: B = 3 1.60 against 1.73 (an earlier run 1.23
#: against 1.46), 8 1.06 against 1.02, 16 0.88 against 0.75, 32 0.91 against 0.78
MIN_SAMPLES: int = 8 * 400


def channels_last_path(x: torch.Tensor) -> bool:
    """Whether a model may run ``x`` ``[batch, leads, samples]`` on the channels-last 2-D path (see the module
    docstring; the model also checks that it holds only :data:`SUPPORTED` layers, :func:`supported`)."""
    if not ENABLED or x.device.type != "cpu":
        return False
    if torch.jit.is_scripting() or (torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export()):
        return False
    if x.dtype not in (torch.float32, torch.bfloat16) or x.dim() != 3:
        return False
    return torch.onnx.is_in_onnx_export() or x.shape[0] * x.shape[-1] >= MIN_SAMPLES


def to_2d(x: torch.Tensor) -> torch.Tensor:
    """``[batch, channels, time]`` -> ``[batch, channels, 1, time]`` in the channels-last layout (a copy)."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def _conv2d(conv: nn.Conv1d, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv``'s stride, padding, dilation and groups applied as a 2-D convolution of height 1 with ``weight``
    ``[out, in / groups, 1, k]``."""
    return F.conv2d(x, weight, bias, (1, conv.stride[0]), (0, conv.padding[0]), (1, conv.dilation[0]), conv.groups)


def run_2d(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` (a 1-D layer or a Sequential of them, in training or eval mode) to ``x`` ``[batch, C, 1,
    T]``.

    Supported (:func:`supported`): ``Conv1d`` (any stride, groups, dilation, bias; zero padding given as a
    number), ``BatchNorm1d``, ``MaxPool1d``, ``ReLU``, ``Dropout`` and ``Identity``; anything else raises
    ``TypeError`` (a bug in the caller, which checks :func:`supported` first).
    """
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = run_2d(layer, x)
        return x
    if isinstance(module, nn.Conv1d) and _known(module):
        return _conv2d(module, x, module.weight.unsqueeze(2), module.bias)
    if isinstance(module, nn.BatchNorm1d):
        return _batch_norm(module, x)
    if isinstance(module, nn.MaxPool1d):
        k, s, p, d = (v[0] if isinstance(v, tuple) else v for v in (module.kernel_size, module.stride,
                                                                      module.padding, module.dilation))
        return F.max_pool2d(x, (1, k), (1, s), (0, p), (1, d), module.ceil_mode)
    if isinstance(module, nn.ReLU):
        return torch.relu(x)
    if isinstance(module, nn.Dropout):
        return F.dropout(x, module.p, module.training)
    if isinstance(module, nn.Identity):
        return x
    raise TypeError(f"run_2d does not know {type(module).__name__}")


def _batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """``bn`` on a 4-D tensor, as ``torch.nn.modules.batchnorm._BatchNorm.forward`` runs it (which refuses 4-D
    input in ``BatchNorm1d``): batch statistics in training, the running ones updated by ``momentum`` (a cumulative
    average when it is None) and ``num_batches_tracked`` counted."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep = not bn.training or bn.track_running_stats
    return F.batch_norm(x, bn.running_mean if keep else None, bn.running_var if keep else None, bn.weight, bn.bias,
                        batch_stats, factor, bn.eps)


#: the layer types :func:`run_2d` runs (a model holding any other, e.g. ``SyncBatchNorm``, keeps the 1-D layers)
SUPPORTED = (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.ReLU, nn.Dropout, nn.Identity)


def _known(layer: nn.Module) -> bool:
    if isinstance(layer, nn.Conv1d):  # padding="same" / "valid" or reflect padding: not as a 2-D op here
        return isinstance(layer.padding, tuple) and layer.padding_mode == "zeros"
    return isinstance(layer, SUPPORTED)


def supported(*modules: nn.Module) -> bool:
    """Whether every leaf layer inside ``modules`` is one :func:`run_2d` runs (checked at each call, about 0.1 ms
    for ``resnet1d_ribeiro``: models can be changed after they are built, e.g. by
    ``nn.SyncBatchNorm.convert_sync_batchnorm``)."""
    return all(_known(m) for module in modules for m in module.modules() if next(m.children(), None) is None)


def conv_bn_2d(conv: nn.Module, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` on ``[batch, C, 1, T]``, with an eval-mode ``bn`` folded into the last convolution of
    ``conv`` (a ``Conv1d`` or a Sequential ending in one): ``conv(x, w * s) + b`` with ``s = gamma / sqrt(var +
    eps)`` and ``b = beta - mean * s (+ bias * s)``, computed from the current weights at each call (a few
    microseconds). One pass fewer over the layer's output, which at the first block's length is the largest
    tensor of the network. Falls back to the two layers where the fold does not apply."""
    last = conv[-1] if isinstance(conv, nn.Sequential) and len(conv) else conv
    if bn.training or bn.running_mean is None or not isinstance(last, nn.Conv1d) or not _known(last):
        return run_2d(bn, run_2d(conv, x))
    if last is not conv:
        x = run_2d(conv[:-1], x)
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if last.bias is not None:
        shift = shift + last.bias * scale
    return _conv2d(last, x, (last.weight * scale.view(-1, 1, 1)).unsqueeze(2), shift)
