"""Tests of the model zoo, parametrised over ``list_models()`` so a newly registered model is tested too.

Most tests use small variants (``SMALL`` kwargs) so the file runs in seconds on a CPU; ``test_default_model``
builds every model with its default arguments once, on a short input. The S4D kernel is checked against an
independent oracle: a step-by-step complex recurrence of the ZOH-discretised system written with numpy.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from small_models import SMALL

from ecglens.exceptions import ConfigError, LeadError
from ecglens.leads import CANONICAL_LEADS
from ecglens.models import (
    EcgModel,
    adapt_input_leads,
    create_model,
    list_models,
    model_info,
    register_model,
)
from ecglens.models.layers import _LEAD_ADAPTERS

EXPECTED = {
    "cnn_baseline",
    "attia_cnn",
    "cnn_bigru",
    "bilstm",
    "resnet1d_ribeiro",
    "xresnet1d50",
    "xresnet1d101",
    "resnet_se_gustafsson",
    "inception1d",
    "s4",
}


MODELS = list_models()


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op torch thread


def small(name: str, seed: int = 0, **kwargs) -> EcgModel:
    torch.manual_seed(seed)
    return create_model(name, **{**SMALL.get(name, {}), **kwargs})


def ecg(batch: int = 2, leads: int = 12, n: int = 300, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, leads, n, generator=g) * 0.5  # mV-scale noise


# ---------------------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------------------


def test_zoo_has_the_named_models() -> None:
    assert EXPECTED <= set(MODELS)
    assert MODELS == sorted(MODELS)
    assert list_models("xresnet*") == ["xresnet1d101", "xresnet1d50"]
    assert list_models(composite=False) == sorted(set(MODELS) - {"ensemble"})  # models built from others left out


def test_unknown_model_names_close_matches() -> None:
    with pytest.raises(ConfigError, match="xresnet1d50") as err:
        create_model("xresnet50")
    assert "Available models" in str(err.value)


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no option.*widht"):
        create_model("cnn_baseline", widht=2)


@pytest.mark.parametrize("bad", [{"in_leads": 0}, {"num_outputs": -1}, {"dropout": 1.5}, {"in_leads": 2.5}])
def test_invalid_sizes_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        create_model("cnn_baseline", **bad)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_model("cnn_baseline")(lambda in_leads=12, num_outputs=1: None)


@pytest.mark.parametrize("name", MODELS)
def test_model_info(name: str) -> None:
    info = model_info(name)
    assert info["name"] == name
    assert len(info["description"]) > 20
    assert {"in_leads", "num_outputs", "dropout"} <= set(info["defaults"])
    assert "parameters" in info["doc"]  # each docstring states its parameter count


# ---------------------------------------------------------------------------------------------------------
# the model contract, for every model
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_default_model(name: str) -> None:
    """Every model at its default size: forward on a short input, embedding size, bookkeeping."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert model.model_name == name and model.model_kwargs == {}
    assert model.in_leads == 12 and model.num_outputs == 1
    x = ecg(n=160)
    with torch.no_grad():
        feats = model.forward_features(x)
        out = model.forward_head(feats)
    assert feats.shape == (2, model.num_features)
    assert out.shape == (2, 1) and torch.isfinite(out).all()
    torch.testing.assert_close(model(x).detach(), out, rtol=1e-5, atol=1e-6)  # forward = head(features)


@pytest.mark.parametrize("n", [250, 1000, 1337, 37])
@pytest.mark.parametrize("name", MODELS)
def test_forward_any_length(name: str, n: int) -> None:
    model = small(name, num_outputs=3)
    out = model(ecg(n=n))  # training mode
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    model.eval()
    with torch.no_grad():
        out = model(ecg(n=n))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name: str) -> None:
    model = small(name, num_outputs=2)
    loss = model(ecg(n=200)).square().mean()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    first = model.get_submodule(model.first_conv[0])
    assert first.weight.grad.abs().sum() > 0  # the gradient reaches the input layer


@pytest.mark.parametrize("name", MODELS)
def test_reset_head_keeps_features(name: str) -> None:
    model = small(name).eval()
    x = ecg(n=200)
    with torch.no_grad():
        feats = model.forward_features(x)
        old_head = model.head
        model.reset_head(3)
        assert model.head is not old_head and model.num_outputs == 3
        assert torch.equal(model.forward_features(x), feats)
        out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    with pytest.raises(ConfigError):
        model.reset_head(0)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name: str) -> None:
    model = small(name, num_outputs=2)
    model(ecg(n=200, seed=5))  # one training-mode pass so BatchNorm running statistics are not the defaults
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone = small(name, seed=123, num_outputs=2)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    model.eval()
    clone.eval()
    x = ecg(n=250)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


@pytest.mark.parametrize("name", MODELS)
def test_param_groups_cover_every_parameter_once(name: str) -> None:
    model = small(name)
    groups = model.param_groups()
    names = [g for g, _ in groups]
    assert len(names) == len(set(names)) >= 3
    assert names[-1] == "head"
    ids = [id(p) for _, params in groups for p in params]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert all(params for _, params in groups)
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups[-1][1]} == head_ids
    group_of = {id(p): i for i, (_, params) in enumerate(groups) for p in params}
    lead_layers = [model.get_submodule(path) for path in model.first_conv]
    lead_groups = {group_of[id(p)] for layer in lead_layers for p in layer.parameters()}
    assert max(lead_groups) < len(groups) - 1  # the layers that see the leads are body, not head
    if name != "attia_cnn":  # Attia's lead layer is the spatial conv after the lead-shared temporal blocks
        assert 0 in lead_groups  # the input layer is in the first group


@pytest.mark.parametrize("name", MODELS)
def test_adapt_input_leads_keeps_weights_of_kept_leads(name: str) -> None:
    """Adapted to 8 leads, the model equals the 12-lead model whose dropped leads' input weights are zero."""
    keep = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    idx = [CANONICAL_LEADS.index(k) for k in keep]
    dropped = [i for i in range(12) if i not in idx]
    model = small(name, num_outputs=2)
    model(ecg(n=200))  # non-default BatchNorm statistics
    model.eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    reference = small(name, num_outputs=2).eval()
    reference.load_state_dict(torch.load(buf, weights_only=True))
    with torch.no_grad():
        for path in reference.first_conv:
            layer = reference.get_submodule(path)
            dim = _LEAD_ADAPTERS[type(layer)][0]
            layer.weight.index_fill_(dim, torch.tensor(dropped), 0.0)
    adapt_input_leads(model, 8, keep=keep)
    assert model.in_leads == 8
    x = ecg(n=240)
    with torch.no_grad():
        np.testing.assert_allclose(model(x[:, idx]).numpy(), reference(x).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(LeadError, match="adapt_input_leads"):
        model(x)
    model.train()
    model(x[:, idx]).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    groups = model.param_groups()
    assert {id(p) for _, ps in groups for p in ps} == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("name", MODELS)
def test_adapt_input_leads_to_one_lead(name: str) -> None:
    model = small(name, num_outputs=2)
    adapt_input_leads(model, 1)
    model.eval()
    with torch.no_grad():
        out = model(ecg(leads=1, n=300))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_adapt_to_one_lead_sums_the_lead_weights() -> None:
    """Without ``keep``, one lead gets the sum of the 12 leads' weights: a signal copied to all 12 leads gives
    the same first-layer output before and after adapting."""
    model = small("cnn_baseline")
    conv12 = model.stem[0][0]
    x1 = ecg(leads=1, n=100)
    with torch.no_grad():
        before = conv12(x1.expand(-1, 12, -1))
        adapt_input_leads(model, 1)
        after = model.stem[0][0](x1)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_adapt_input_leads_bad_keep() -> None:
    model = small("cnn_baseline")
    with pytest.raises(ConfigError, match="one source lead"):
        adapt_input_leads(model, 2, keep=["I"])
    with pytest.raises(LeadError, match="not one of the model's leads"):
        adapt_input_leads(model, 1, keep=["X7"])
    with pytest.raises(ConfigError, match="index"):
        adapt_input_leads(model, 1, keep=[12])
    assert model.in_leads == 12  # unchanged after the failures
    adapt_input_leads(model, 2, keep=["avr", 0])  # names are normalised; indices and names mix
    assert model.in_leads == 2


def test_wrong_input_rank_is_a_config_error() -> None:
    model = small("cnn_baseline")
    with pytest.raises(ConfigError, match="batch"):
        model(torch.zeros(12, 100))


# ---------------------------------------------------------------------------------------------------------
# S4D against an independent oracle
# ---------------------------------------------------------------------------------------------------------


def _recurrence_impulse_response(kernel, length: int) -> np.ndarray:
    """Simulate ``x_k = A_bar x_{k-1} + B_bar u_k, y_k = 2 Re(C x_k)`` for a unit impulse, with numpy."""
    dt = np.exp(kernel.log_dt.detach().double().numpy())[:, None]
    a = -np.exp(kernel.log_a_real.detach().double().numpy()) + 1j * kernel.a_imag.detach().double().numpy()
    c = kernel.C.detach().double().numpy()
    c = c[..., 0] + 1j * c[..., 1]
    a_bar, b_bar = np.exp(dt * a), (np.exp(dt * a) - 1) / a
    state = np.zeros_like(a)
    out = np.zeros((a.shape[0], length))
    for k in range(length):
        state = a_bar * state + b_bar * (1.0 if k == 0 else 0.0)
        out[:, k] = 2 * (c * state).sum(axis=1).real
    return out


def test_s4d_kernel_matches_recurrence() -> None:
    from ecglens.models.s4 import S4DKernel

    torch.manual_seed(0)
    kernel = S4DKernel(channels=3, d_state=8, dt_min=0.01, dt_max=0.5)
    k = kernel(50).detach().double().numpy()
    np.testing.assert_allclose(k, _recurrence_impulse_response(kernel, 50), rtol=1e-4, atol=1e-5)


def test_fft_conv_matches_direct_convolution() -> None:
    from ecglens.models.s4 import fft_conv

    g = torch.Generator().manual_seed(0)
    u, k = torch.randn(2, 3, 40, generator=g), torch.randn(3, 40, generator=g)
    y = fft_conv(u, k).numpy()
    for b in range(2):
        for h in range(3):
            want = np.convolve(u[b, h].numpy(), k[h].numpy())[:40]
            np.testing.assert_allclose(y[b, h], want, rtol=1e-4, atol=1e-4)


def test_s4_bidirectional_layer_sees_the_future_and_causal_does_not() -> None:
    from ecglens.models.s4 import S4DLayer

    torch.manual_seed(0)
    u = torch.randn(1, 4, 30)
    u2 = u.clone()
    u2[..., 20:] += 1.0  # change only the future of t < 20
    for bidirectional, changes in ((False, False), (True, True)):
        layer = S4DLayer(4, 8, dropout=0.0, bidirectional=bidirectional).eval()
        with torch.no_grad():
            diff = (layer(u) - layer(u2))[..., :20].abs().max().item()
        assert (diff > 1e-6) == changes


def test_s4_no_weight_decay_names_ssm_parameters() -> None:
    model = small("s4")
    names = model.no_weight_decay()
    assert names and all(n.rsplit(".", 1)[-1] in {"log_dt", "log_a_real", "a_imag"} for n in names)
    assert len(names) == 3 * len(model.blocks)


def test_s4_state_space_parameters_get_no_weight_decay_in_training_or_finetuning() -> None:
    from ecglens.train.finetune import discriminative_param_groups
    from ecglens.train.module import _param_groups

    model = small("s4")
    ssm = {id(p) for n, p in model.named_parameters() if n in model.no_weight_decay()}
    assert any(p.ndim >= 2 for n, p in model.named_parameters() if id(p) in ssm)  # would be decayed by shape
    for groups in (_param_groups(model, 0.01), discriminative_param_groups(model, 1e-3, 0.5, 0.01)):
        decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
        assert decayed and not decayed & ssm
        assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize("two_sided", [False, True])
def test_dft_conv_matches_fft_conv(two_sided: bool) -> None:
    from ecglens.models.s4 import dft_conv, fft_conv

    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 3, 25, generator=g)
    k = torch.randn(3, 50 if two_sided else 25, generator=g)
    torch.testing.assert_close(dft_conv(u, k), fft_conv(u, k), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s4", "bilstm", "resnet1d_ribeiro"])
def test_onnx_export_with_dynamic_length(name: str, tmp_path) -> None:
    """Models export to ONNX (batch and length dynamic) and onnxruntime reproduces PyTorch's output.

    S4 (DFT-matrix path during export), an RNN, and a two-stream residual net; the others export the same way
    (checked by hand; ONNX export is slow, so not all are run here)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import warnings

    model = small(name, num_outputs=2).eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ecg(n=200),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamo=False,
            dynamic_axes={"x": {0: "batch", 2: "n_samples"}, "y": {0: "batch"}},
        )
    x = ecg(batch=3, n=333, seed=7)
    got = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_ribeiro_stem_stride_halves_the_first_block_and_keeps_the_output_length() -> None:
    """``stem_stride=2`` with the first block downsampling by 2 instead of 4: the same time steps at the end, the
    first block's convolutions on half as many (counted by a hook), any input length works."""
    from ecglens.models import create_model

    kwargs = {"filters": [8, 12, 16, 20, 24], "kernel_size": 9}
    plain = create_model("resnet1d_ribeiro", num_outputs=3, downsample=[4, 4, 2, 2], **kwargs)
    strided = create_model("resnet1d_ribeiro", num_outputs=3, downsample=[2, 4, 2, 2], stem_stride=2, **kwargs)
    lengths: dict[str, list[int]] = {"plain": [], "strided": []}
    for key, model in (("plain", plain), ("strided", strided)):
        model.blocks[0].conv1.register_forward_hook(lambda m, i, o, key=key: lengths[key].append(o.shape[-1]))
        model.blocks[-1].conv2.register_forward_hook(lambda m, i, o, key=key: lengths[key].append(o.shape[-1]))
        for n in (400, 1000, 333):
            assert model.eval()(torch.randn(2, 12, n)).shape == (2, 3)
    assert lengths["strided"][0::2] == [200, 500, 167] and lengths["plain"][0::2] == [400, 1000, 333]
    assert lengths["strided"][1::2] == lengths["plain"][1::2]  # the same final time steps
    with pytest.raises(Exception, match="stem_stride"):
        create_model("resnet1d_ribeiro", stem_stride=0, **kwargs)


def test_ribeiro_separable_blocks_factor_each_conv_and_keep_the_shapes() -> None:
    """``separable=True``: every block conv is a depthwise conv (one filter per channel, the block's stride) and a
    pointwise one; the stem stays a full conv; the same feature and output shapes at any length, far fewer
    weights; a list gives one value per block, and anything else is refused naming the option."""
    from ecglens.models import create_model

    kwargs = {"filters": [16, 24, 32, 40, 48], "kernel_size": 9, "downsample": [4, 4, 2, 2]}
    plain = create_model("resnet1d_ribeiro", num_outputs=3, **kwargs)
    sep = create_model("resnet1d_ribeiro", num_outputs=3, separable=True, **kwargs)
    assert isinstance(sep.stem[0], torch.nn.Conv1d) and sep.stem[0].groups == 1
    for block, (a, b) in zip(sep.blocks, zip(kwargs["filters"][:-1], kwargs["filters"][1:], strict=True), strict=True):
        depthwise, pointwise = block.conv1
        assert (depthwise.groups, depthwise.in_channels, depthwise.out_channels) == (a, a, a)
        assert (pointwise.kernel_size, pointwise.in_channels, pointwise.out_channels) == ((1,), a, b)
    assert [blk.conv2[0].stride[0] for blk in sep.blocks] == kwargs["downsample"]
    n_plain = sum(p.numel() for p in plain.parameters())
    n_sep = sum(p.numel() for p in sep.parameters())
    assert n_sep < 0.3 * n_plain
    for n in (400, 1000, 333):
        x = torch.randn(2, 12, n)
        assert sep.eval()(x).shape == plain.eval()(x).shape == (2, 3)
        assert sep.forward_features(x).shape == (2, 48)
    mixed = create_model("resnet1d_ribeiro", num_outputs=3, separable=[True, False, False, False], **kwargs)
    assert isinstance(mixed.blocks[0].conv1, torch.nn.Sequential)
    assert all(isinstance(b.conv1, torch.nn.Conv1d) for b in mixed.blocks[1:])
    assert mixed.eval()(torch.randn(2, 12, 400)).shape == (2, 3)
    for bad in ([True, False], "yes", 1):
        with pytest.raises(Exception, match="separable"):
            create_model("resnet1d_ribeiro", separable=bad, **kwargs)
