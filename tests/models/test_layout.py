"""The channels-last 2-D inference path of ``resnet1d_ribeiro`` (:mod:`ecglens.models._layout`): same outputs as
the 1-D layers, on the CPU in inference, training and ONNX exports."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from ecglens.models import _layout as layout
from ecglens.models import create_model

SMALL = {"filters": [8, 12, 16, 20, 24], "kernel_size": 5}


@pytest.fixture(autouse=True)
def _any_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' tiny batches take the path too (by default only batches of MIN_SAMPLES samples do)."""
    monkeypatch.setattr(layout, "MIN_SAMPLES", 0)


def _outputs(model: nn.Module, x: torch.Tensor, enabled: bool, monkeypatch: pytest.MonkeyPatch) -> torch.Tensor:
    monkeypatch.setattr(layout, "ENABLED", enabled)
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("kwargs", [
    {},
    {"separable": True},
    {"separable": [True, True, False, False]},
    {"stem_stride": 2, "downsample": [2, 4, 2, 2]},
])
@pytest.mark.parametrize("n_samples", [400, 333])
def test_2d_path_gives_the_1d_outputs(kwargs: dict, n_samples: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped variant of the architecture (plain, separable, strided stem), a length that no stride
    divides (ceil-mode pooling), trained batch-norm statistics: the two paths agree to float rounding."""
    torch.manual_seed(0)
    model = create_model("resnet1d_ribeiro", num_outputs=3, **SMALL, **kwargs)
    with torch.no_grad():  # batch-norm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(5, 12, n_samples)
    one_d = _outputs(model, x, False, monkeypatch)
    two_d = _outputs(model, x, True, monkeypatch)
    assert two_d.shape == one_d.shape == (5, 3)
    torch.testing.assert_close(two_d, one_d, rtol=1e-5, atol=1e-5)


def test_path_is_taken_on_the_cpu_for_float_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(2, 12, 100)
    assert layout.channels_last_path(x)  # in training and inference alike
    assert not layout.channels_last_path(x.double())
    assert not layout.channels_last_path(x[0])  # not [batch, leads, samples]: check_input says why
    monkeypatch.setattr(layout, "ENABLED", False)
    assert not layout.channels_last_path(x)


def test_small_batches_keep_the_1d_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A single ECG's three 4-s windows run faster on the 1-D layers: the path starts at MIN_SAMPLES."""
    monkeypatch.setattr(layout, "MIN_SAMPLES", 8 * 400)
    assert not layout.channels_last_path(torch.zeros(3, 12, 400))
    assert layout.channels_last_path(torch.zeros(8, 12, 400))
    assert layout.channels_last_path(torch.zeros(4, 12, 1000))


def _grads(model: nn.Module, x: torch.Tensor, enabled: bool, monkeypatch: pytest.MonkeyPatch
           ) -> tuple[torch.Tensor, list[torch.Tensor], nn.Module]:
    monkeypatch.setattr(layout, "ENABLED", enabled)
    model = copy.deepcopy(model)
    out = model(x)
    (out ** 2).mean().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()], model


def test_training_step_on_the_2d_path_matches_a_float64_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Train mode (batch statistics), no dropout: outputs, every weight's gradient and the running statistics
    as the 1-D layers give them, the gradients within 1e-4 of a float64 computation."""
    torch.manual_seed(0)
    model = create_model("resnet1d_ribeiro", num_outputs=2, block_dropout=0.0, separable=[True, True, False, False],
                         **SMALL).train()
    x = torch.randn(16, 12, 200)
    out_1d, grads_1d, trained_1d = _grads(model, x, False, monkeypatch)
    out_2d, grads_2d, trained_2d = _grads(model, x, True, monkeypatch)
    monkeypatch.setattr(layout, "ENABLED", False)
    reference = copy.deepcopy(model).double()
    (reference(x.double()) ** 2).mean().backward()
    torch.testing.assert_close(out_2d, out_1d, rtol=1e-4, atol=1e-5)
    for p_ref, g in zip(reference.parameters(), grads_2d, strict=True):
        assert ((g.double() - p_ref.grad).norm() / p_ref.grad.norm()) < 1e-4
    for g1, g2 in zip(grads_1d, grads_2d, strict=True):
        torch.testing.assert_close(g2, g1, rtol=1e-2, atol=1e-5)
    for (name, b1), (_, b2) in zip(trained_1d.named_buffers(), trained_2d.named_buffers(), strict=True):
        torch.testing.assert_close(b2, b1, rtol=1e-5, atol=1e-6, msg=name)


def test_2d_path_runs_in_training_with_dropout_and_in_eval_with_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training with dropout goes through ``forward_2d`` and every weight gets a gradient; in eval mode with
    gradients on (saliency, fine-tuning with frozen batch norms) the folded batch norms pass gradients to their
    weights and to the input as the 1-D layers do."""
    model = create_model("resnet1d_ribeiro", num_outputs=1, **SMALL).train()
    calls = []
    block_type = type(model.blocks[0])
    original = block_type.forward_2d
    monkeypatch.setattr(block_type, "forward_2d", lambda self, x, y: calls.append(1) or original(self, x, y))
    x = torch.randn(4, 12, 100)
    model(x).sum().backward()
    assert len(calls) == len(model.blocks)
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    grads = {}
    for enabled in (False, True):
        monkeypatch.setattr(layout, "ENABLED", enabled)
        xi = x.clone().requires_grad_(True)
        model.zero_grad()
        model(xi).sum().backward()
        grads[enabled] = (xi.grad, model.blocks[0].bn1.weight.grad.clone())
    torch.testing.assert_close(grads[True][0], grads[False][0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads[True][1], grads[False][1], rtol=1e-4, atol=1e-6)


def test_run_2d_refuses_layers_it_does_not_know() -> None:
    with pytest.raises(TypeError, match="LSTM"):
        layout.run_2d(nn.LSTM(4, 4), torch.zeros(1, 4, 1, 8))
    assert layout.supported(nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.BatchNorm1d(2)))
    assert not layout.supported(nn.Conv1d(2, 2, 3, padding="same"))  # padding by name: the 1-D layers
    assert not layout.supported(nn.Conv1d(2, 2, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(TypeError, match="Conv1d"):
        layout.run_2d(nn.Conv1d(2, 2, 3, padding="same"), torch.zeros(1, 2, 1, 8))


def test_run_2d_dropout_follows_its_mode() -> None:
    x = torch.ones(2, 4, 1, 50).contiguous(memory_format=torch.channels_last)
    drop = nn.Dropout(0.5)
    assert torch.equal(layout.run_2d(drop.eval(), x), x)
    assert (layout.run_2d(drop.train(), x) == 0).any()


def test_onnx_export_holds_the_2d_graph_and_matches_torch(tmp_path) -> None:
    """An ONNX export traces the 2-D path (2-D convolutions), and onnxruntime gives PyTorch's outputs, at another
    batch size and length too (dynamic axes)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model("resnet1d_ribeiro", num_outputs=2, separable=[True, False, False, False], **SMALL).eval()
    path = tmp_path / "m.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(2, 12, 200),), str(path), input_names=["ecg"], output_names=["y"],
                          dynamic_axes={"ecg": {0: "batch", 2: "samples"}}, opset_version=17, dynamo=False)
    graph = onnx.load(str(path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(len(next(a.ints for a in n.attribute if a.name == "kernel_shape")) == 2 for n in convs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 12, 333)
    with torch.inference_mode():
        expected = model(x).numpy()
    np.testing.assert_allclose(session.run(None, {"ecg": x.numpy()})[0], expected, rtol=1e-4, atol=1e-5)


def test_layers_the_path_does_not_know_keep_the_1d_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose batch norms were converted to SyncBatchNorm (DDP) runs on the 1-D layers, not into a
    TypeError, with the same outputs."""
    torch.manual_seed(0)
    model = create_model("resnet1d_ribeiro", num_outputs=1, **SMALL).eval()
    x = torch.randn(4, 12, 100)
    with torch.inference_mode():
        expected = model(x)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model)).eval()  # converts in place
    assert not layout.supported(synced.stem, *synced.blocks)
    assert layout.supported(model.stem, *model.blocks)
    calls = []
    block_type = type(synced.blocks[0])
    monkeypatch.setattr(block_type, "forward_2d", lambda self, x, y: calls.append(1))
    with torch.inference_mode():
        torch.testing.assert_close(synced(x), expected, rtol=1e-5, atol=1e-5)
    assert not calls


@pytest.mark.parametrize("momentum", [0.1, None])
def test_run_2d_batch_norm_in_training_matches_batchnorm1d(momentum: float | None) -> None:
    """Batch statistics, the running statistics' update (momentum, or the cumulative average) and the batch count
    as ``BatchNorm1d`` itself does them."""
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(6, momentum=momentum).train()
    twin = copy.deepcopy(bn)
    x = torch.randn(4, 6, 50)
    for _ in range(2):
        expected = bn(x)
        got = layout.run_2d(twin, layout.to_2d(x)).squeeze(2)
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(twin.running_mean, bn.running_mean)
    torch.testing.assert_close(twin.running_var, bn.running_var)
    assert int(twin.num_batches_tracked) == int(bn.num_batches_tracked) == 2
