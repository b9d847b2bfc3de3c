"""Unit tests of core.compression: hand-computed pruning and quantization cases,
invariants over every setting, and the input model coming out bit-identical."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from torch import nn

from core.compression import (
    PRUNE_METHODS,
    PRUNE_SCOPES,
    QUANT_GRANULARITIES,
    QUANT_SCHEMES,
    WEIGHT_BITS,
    CompressionConfig,
    compress,
    quantization_levels,
    quantization_params,
    quantize_weight,
)
from core.layers import prunable_layers
from models import create_model

QUANT_BITS = [b for b in WEIGHT_BITS if b != 32]


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.fill_(0.5)
    return layer


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, (1, 8, 8), 3)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_plain(model: nn.Module) -> None:
    """No pruning reparametrisation or hook left behind."""
    keys = model.state_dict().keys()
    assert not any(k.endswith(("_orig", "_mask")) for k in keys), list(keys)
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks
    for _, layer in prunable_layers(model):
        assert isinstance(layer.weight, nn.Parameter)


# ----------------------------------------------------------------- pruning, by hand


@pytest.mark.parametrize("scope", PRUNE_SCOPES)
def test_magnitude_2x2_zeroes_the_two_smallest(scope):
    model = nn.Sequential(_linear([[0.1, -0.4], [0.3, -0.2]]))
    out = compress(model, CompressionConfig(0.5, "magnitude", scope))
    assert torch.equal(out[0].weight, torch.tensor([[0.0, -0.4], [0.3, 0.0]]))
    assert torch.equal(out[0].bias, torch.full((2,), 0.5))  # biases untouched
    _assert_plain(out)


def test_global_and_layer_scope_differ_on_layers_of_different_scale():
    small = torch.arange(1, 17, dtype=torch.float32).view(4, 4) / 100
    model = nn.Sequential(_linear((small).tolist()), nn.ReLU(), _linear((small * 1000).tolist()))
    glob = compress(model, CompressionConfig(0.5, "magnitude", "global"))
    layer = compress(model, CompressionConfig(0.5, "magnitude", "layer"))
    # Global: the 16 smallest of 32 are exactly the whole first layer.
    assert (glob[0].weight == 0).float().mean() == 1.0
    assert (glob[2].weight == 0).float().mean() == 0.0
    # Layer: 8 of 16 per layer, the smallest eight of each.
    for i in (0, 2):
        assert torch.equal(layer[i].weight == 0, torch.arange(16).view(4, 4) < 8)


def test_random_pruning_is_reproducible_per_seed_and_keeps_global_rng():
    model = _model("mlp")
    state = torch.get_rng_state()
    cfg = CompressionConfig(0.5, "random", "global", seed=1)
    a, b = compress(model, cfg), compress(model, cfg)
    c = compress(model, replace(cfg, seed=2))
    assert torch.equal(torch.get_rng_state(), state)
    for (_, la), (_, lb), (_, lc) in zip(prunable_layers(a), prunable_layers(b), prunable_layers(c)):
        assert torch.equal(la.weight, lb.weight)
        assert not torch.equal(la.weight == 0, lc.weight == 0)
    total = sum(m.weight.numel() for _, m in prunable_layers(a))
    assert sum(int((m.weight == 0).sum()) for _, m in prunable_layers(a)) == round(0.5 * total)


def test_random_layer_scope_prunes_the_same_fraction_everywhere():
    out = compress(_model("mlp"), CompressionConfig(0.25, "random", "layer", seed=3))
    for _, layer in prunable_layers(out):
        assert int((layer.weight == 0).sum()) == round(0.25 * layer.weight.numel())


@pytest.mark.parametrize("scope", PRUNE_SCOPES)
@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_structured_zeroes_whole_units_never_the_classes(name, scope):
    model = _model(name)
    out = compress(model, CompressionConfig(0.5, "structured", scope))
    layers = prunable_layers(out)
    zero_units = []
    for _, layer in layers:
        rows = layer.weight.flatten(1)
        dead = (rows == 0).all(1)
        assert torch.equal((rows == 0).any(1), dead)  # a unit is either whole or gone
        zero_units.append(int(dead.sum()))
    assert zero_units[-1] == 0 and not (layers[-1][1].weight == 0).any()
    units = [layer.weight.shape[0] for _, layer in layers[:-1]]
    if scope == "layer":
        assert zero_units[:-1] == [round(0.5 * u) for u in units]
    else:
        assert sum(zero_units) == round(0.5 * sum(units))


def test_global_structured_ranks_units_by_mean_not_by_l1_norm():
    # Row means 3, 1.5 | 2, 5; L1 norms 12, 6 | 4, 10. Pruning one unit of four:
    # the mean picks the first layer's second row, the L1 norm would pick row 0 of layer 2.
    model = nn.Sequential(
        _linear([[3.0] * 4, [1.5] * 4]), _linear([[2.0, 2.0], [5.0, 5.0]]), _linear([[1.0, 1.0]] * 3)
    )
    out = compress(model, CompressionConfig(0.25, "structured", "global"))
    assert torch.equal(out[0].weight, torch.tensor([[3.0] * 4, [0.0] * 4]))
    assert torch.equal(out[1].weight, model[1].weight)


@pytest.mark.parametrize("method", PRUNE_METHODS)
def test_full_pruning_runs_on_the_bias_path(method):
    model = _model("lenet5").eval()
    out = compress(model, CompressionConfig(1.0, method, "global"))
    layers = prunable_layers(out)
    pruned = layers[:-1] if method == "structured" else layers
    assert all(not layer.weight.any() for _, layer in pruned)
    if method == "structured":
        assert torch.equal(layers[-1][1].weight, prunable_layers(model)[-1][1].weight)
    y = out(torch.randn(2, 1, 8, 8))
    assert y.shape == (2, 3) and torch.isfinite(y).all()
    if method != "structured":  # every weight zero: the output is the last bias
        assert torch.equal(y, out[-1].bias.expand(2, 3))


def test_integer_amount_one_means_everything():
    # prune's own API reads an int amount as a count; the config's 1 is 100 %.
    out = compress(_model("mlp"), CompressionConfig(1, "magnitude", "layer"))
    assert all(not layer.weight.any() for _, layer in prunable_layers(out))


def test_model_without_prunable_layers_is_copied():
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    out = compress(model, CompressionConfig(0.5, "structured", weight_bits=2))
    assert out is not model and len(out) == 2


def test_no_op_config_returns_an_equal_copy():
    model = _model("mlp")
    out = compress(model, CompressionConfig())
    assert out is not model
    for (k, v), (k2, v2) in zip(model.state_dict().items(), out.state_dict().items()):
        assert k == k2 and torch.equal(v, v2) and v.data_ptr() != v2.data_ptr()


# ------------------------------------------------------------ quantization, by hand


def test_symmetric_2bit_is_ternary():
    w = torch.tensor([[-2.0, -0.9, 0.3, 1.2, 0.0]])
    scale, zero_point, qmin, qmax = quantization_params(w, 2, "symmetric", "per_tensor")
    assert (float(scale), int(zero_point), qmin, qmax) == (2.0, 0, -1, 1)
    # w / 2 = [-1, -0.45, 0.15, 0.6, 0] -> codes [-1, 0, 0, 1, 0]
    assert torch.equal(quantize_weight(w, 2, "symmetric", "per_tensor"), torch.tensor([[-2.0, 0.0, 0.0, 2.0, 0.0]]))
    assert torch.equal(quantization_levels(w, 2, "symmetric", "per_tensor"), torch.tensor([-2.0, 0.0, 2.0]))


def test_affine_3bit_matches_the_reference_formula():
    w = torch.tensor([[-0.5, 0.0, 0.3, 0.6, 1.25]])
    scale, zero_point, qmin, qmax = quantization_params(w, 3, "affine", "per_tensor")
    # s = (1.25 - (-0.5)) / 7 = 0.25; z = clamp(0 - round(-0.5 / 0.25), 0, 7) = 2
    assert (float(scale), int(zero_point), qmin, qmax) == (0.25, 2, 0, 7)
    # codes round(w / s) + z = [0, 2, 3 (1.2+2), 4 (2.4+2), 7] -> (q - z) * s
    expected = torch.tensor([[-0.5, 0.0, 0.25, 0.5, 1.25]])
    assert torch.equal(quantize_weight(w, 3, "affine", "per_tensor"), expected)


def test_affine_all_positive_channel_keeps_zero_at_code_zero():
    w = torch.tensor([[0.0, 0.2, 0.8], [-0.6, -0.25, 0.0]])
    scale, zero_point, _, _ = quantization_params(w, 2, "affine", "per_channel")
    # row 0: range [0, 0.8], s = 0.8/3, z = 0; row 1: range [-0.6, 0], s = 0.2, z = 3
    # (-0.25 / 0.2 = -1.25 -> code 2 -> -0.2; 0.2 / (0.8/3) = 0.75 -> code 1)
    assert torch.allclose(scale, torch.tensor([0.8 / 3, 0.2])) and zero_point.tolist() == [0, 3]
    out = quantize_weight(w, 2, "affine", "per_channel")
    assert out[0, 0] == 0 and out[1, 2] == 0
    assert torch.allclose(out, torch.tensor([[0.0, 0.8 / 3, 0.8], [-0.6, -0.2, 0.0]]))


def test_one_bit_is_sign_times_mean_of_kept_weights():
    w = torch.tensor([[0.5, -1.0, 0.0, 1.5], [-0.2, 0.4, 0.0, 0.0]])
    per_channel = quantize_weight(w, 1, "symmetric", "per_channel")
    # kept means: (0.5 + 1 + 1.5) / 3 = 1.0 and (0.2 + 0.4) / 2 = 0.3
    assert torch.allclose(per_channel, torch.tensor([[1.0, -1.0, 0.0, 1.0], [-0.3, 0.3, 0.0, 0.0]]))
    per_tensor = quantize_weight(w, 1, "affine", "per_tensor")  # same semantics for affine
    alpha = 3.6 / 5
    assert torch.allclose(per_tensor, torch.sign(w) * alpha)
    assert (per_channel[w == 0] == 0).all() and (per_tensor[w == 0] == 0).all()
    assert torch.allclose(quantization_levels(w, 1, "symmetric", "per_channel"), torch.tensor([[-1.0, 1.0], [-0.3, 0.3]]))


@pytest.mark.parametrize("bits", QUANT_BITS)
@pytest.mark.parametrize("scheme", QUANT_SCHEMES)
@pytest.mark.parametrize("granularity", QUANT_GRANULARITIES)
def test_distinct_values_fit_in_the_bit_width(bits, scheme, granularity):
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(6, 3, 5, 5, generator=gen) * torch.rand(6, 1, 1, 1, generator=gen)
    w[w.abs() < 0.1] = 0.0  # some pruned weights
    w_before = w.clone()
    out = quantize_weight(w, bits, scheme, granularity)
    assert torch.equal(w, w_before) and out.shape == w.shape and out.dtype == w.dtype
    assert (out[w == 0] == 0).all()
    levels = quantization_levels(w, bits, scheme, granularity)
    limit = {1: 3}.get(bits, 2**bits - 1 if scheme == "symmetric" else 2**bits)
    rows = out.flatten(1) if granularity == "per_channel" else out.reshape(1, -1)
    for i, row in enumerate(rows):
        assert len(row.unique()) <= limit
        allowed = torch.cat([levels.reshape(-1, levels.shape[-1])[i], torch.zeros(1)])
        assert torch.isclose(row[:, None], allowed[None, :], rtol=0, atol=1e-6).any(1).all()


@pytest.mark.parametrize("bits", QUANT_BITS)
@pytest.mark.parametrize("scheme", QUANT_SCHEMES)
@pytest.mark.parametrize("granularity", QUANT_GRANULARITIES)
def test_all_zero_and_subnormal_weights_give_no_nan(bits, scheme, granularity):
    zeros = torch.zeros(4, 3)
    scale, _, _, _ = quantization_params(zeros, bits, scheme, granularity)
    assert (scale == 1.0).all()  # the placeholder
    assert torch.equal(quantize_weight(zeros, bits, scheme, granularity), zeros)
    tiny = torch.tensor([[0.0, 1e-40, -3e-40], [0.0, 0.0, 0.0]])
    out = quantize_weight(tiny, bits, scheme, granularity)
    assert torch.isfinite(out).all() and (out[tiny == 0] == 0).all()


def test_bad_quantization_arguments_fail_loudly():
    with pytest.raises(ValueError, match="bits"):
        quantize_weight(torch.ones(2, 2), 32, "symmetric", "per_tensor")
    with pytest.raises(ValueError, match="scheme"):
        quantization_params(torch.ones(2, 2), 4, "log", "per_tensor")


# ------------------------------------------------------------ invariants, every setting


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_every_setting_runs_without_nan_and_keeps_pruned_weights_zero(name):
    model = _model(name).eval()
    before = _snapshot(model)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for method, scope, amount in itertools.product(PRUNE_METHODS, PRUNE_SCOPES, (0.0, 0.5, 1.0)):
        base = CompressionConfig(amount, method, scope, seed=7)
        pruned_only = prunable_layers(compress(model, base))
        for bits, scheme, gran in itertools.product(WEIGHT_BITS, QUANT_SCHEMES, QUANT_GRANULARITIES):
            cfg = replace(base, weight_bits=bits, quant_scheme=scheme, quant_granularity=gran)
            out = compress(model, cfg)
            _assert_plain(out)
            assert not out.training and list(out.state_dict()) == list(before)
            for (_, ref), (_, layer) in zip(pruned_only, prunable_layers(out)):
                assert torch.isfinite(layer.weight).all(), cfg
                assert (layer.weight[ref.weight == 0] == 0).all(), cfg
            assert torch.isfinite(out(x)).all(), cfg
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("training", [True, False])
def test_input_model_comes_out_bit_identical(training):
    model = _model("lenet5").train(training)
    for p in list(model.parameters())[::2]:
        p.requires_grad_(False)  # shared models may arrive frozen
    before = _snapshot(model)
    flags = [p.requires_grad for p in model.parameters()]
    state = torch.get_rng_state()
    for method in PRUNE_METHODS:
        cfg = CompressionConfig(0.7, method, "global", 3, "affine", "per_channel")
        out = compress(model, cfg)
        assert out.training == training
        assert [p.requires_grad for p in out.parameters()] == flags
        assert all(not p.grad_fn for p in out.parameters())
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(m.training == training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(torch.get_rng_state(), state)
    _assert_plain(model)
