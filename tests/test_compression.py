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
    QUANT_RANGES,
    QUANT_SCHEMES,
    WEIGHT_BITS,
    CompressionConfig,
    compress,
    set_calibration,
    structured_limit,
)
from core.compression.pruning import STRUCTURED
from core.compression.quantization import (CLIP_RATIOS, quantization_levels, quantization_params, quantize_weight,
                                           range_notice, range_used)
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
    model = create_model(name, (1, 8, 8), 3)
    set_calibration(model, torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)))  # for "apoz"
    return model


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
    out = compress(model, CompressionConfig(prune_amount=0.5, prune_method="magnitude", prune_scope=scope))
    assert torch.equal(out[0].weight, torch.tensor([[0.0, -0.4], [0.3, 0.0]]))
    assert torch.equal(out[0].bias, torch.full((2,), 0.5))  # biases untouched
    _assert_plain(out)


def test_global_and_layer_scope_differ_on_layers_of_different_scale():
    small = torch.arange(1, 17, dtype=torch.float32).view(4, 4) / 100
    model = nn.Sequential(_linear((small).tolist()), nn.ReLU(), _linear((small * 1000).tolist()))
    glob = compress(model, CompressionConfig(prune_amount=0.5, prune_method="magnitude", prune_scope="global"))
    layer = compress(model, CompressionConfig(prune_amount=0.5, prune_method="magnitude", prune_scope="layer"))
    # Global: the 16 smallest of 32 are exactly the whole first layer.
    assert (glob[0].weight == 0).float().mean() == 1.0
    assert (glob[2].weight == 0).float().mean() == 0.0
    # Layer: 8 of 16 per layer, the smallest eight of each.
    for i in (0, 2):
        assert torch.equal(layer[i].weight == 0, torch.arange(16).view(4, 4) < 8)


def test_random_pruning_is_reproducible_per_seed_and_keeps_global_rng():
    model = _model("mlp")
    state = torch.get_rng_state()
    cfg = CompressionConfig(prune_amount=0.5, prune_method="random", prune_scope="global", seed=1)
    a, b = compress(model, cfg), compress(model, cfg)
    c = compress(model, replace(cfg, seed=2))
    assert torch.equal(torch.get_rng_state(), state)
    for (_, la), (_, lb), (_, lc) in zip(prunable_layers(a), prunable_layers(b), prunable_layers(c)):
        assert torch.equal(la.weight, lb.weight)
        assert not torch.equal(la.weight == 0, lc.weight == 0)
    total = sum(m.weight.numel() for _, m in prunable_layers(a))
    assert sum(int((m.weight == 0).sum()) for _, m in prunable_layers(a)) == round(0.5 * total)


def test_random_layer_scope_prunes_the_same_fraction_everywhere():
    out = compress(_model("mlp"), CompressionConfig(prune_amount=0.25, prune_method="random", prune_scope="layer", seed=3))
    for _, layer in prunable_layers(out):
        assert int((layer.weight == 0).sum()) == round(0.25 * layer.weight.numel())


def _zero_share(model: nn.Module) -> float:
    layers = prunable_layers(model)
    return sum(int((m.weight == 0).sum()) for _, m in layers) / sum(m.weight.numel() for _, m in layers)


@pytest.mark.parametrize("scope", PRUNE_SCOPES)
@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_structured_zeroes_whole_units_never_the_classes(name, scope):
    model = _model(name)
    out = compress(model, CompressionConfig(prune_amount=0.5, prune_method="structured", prune_scope=scope))
    layers = prunable_layers(out)
    zero_units = []
    for _, layer in layers:
        rows = layer.weight.flatten(1)
        dead = (rows == 0).all(1)
        assert torch.equal((rows == 0).any(1), dead)  # a unit is either whole or gone
        zero_units.append(int(dead.sum()))
    assert zero_units[-1] == 0 and not (layers[-1][1].weight == 0).any()
    if scope == "layer":  # every layer but the classes loses the same share of its units (to one unit)
        shares = [d / layer.weight.shape[0] for d, (_, layer) in zip(zero_units, layers[:-1])]
        assert max(shares) - min(shares) <= max(1 / layer.weight.shape[0] for _, layer in layers[:-1])


@pytest.mark.parametrize("scope", PRUNE_SCOPES)
@pytest.mark.parametrize("name", ["mlp", "lenet5"])
@pytest.mark.parametrize("amount", [0.1, 0.3, 0.6, 0.8, 0.95])
def test_structured_rate_is_the_share_of_weights_zeroed(name, scope, amount):
    # Regression (issue 7 §6): global structured at 60 % used to zero 84 % of the weights,
    # because the rate counted units. Now it is the share of weights, to within whole units.
    model = _model(name)
    out = compress(model, CompressionConfig(prune_amount=amount, prune_method="structured", prune_scope=scope))
    layers = prunable_layers(model)
    total = sum(m.weight.numel() for _, m in layers)
    unit_sizes = [m.weight[0].numel() for _, m in layers[:-1]]
    # Global: the nearest reachable total is within half a unit of the target. Per layer:
    # each layer rounds to its nearest unit count, half a unit of each layer at most.
    slack = (max(unit_sizes) / 2 if scope == "global" else sum(unit_sizes) / 2) + 0.5
    assert abs(_zero_share(out) * total - amount * total) <= slack


@pytest.mark.parametrize("scope", PRUNE_SCOPES)
def test_structured_stops_at_the_classes(scope):
    model = _model("lenet5")
    layers = prunable_layers(model)
    sizes = [m.weight.numel() for _, m in layers]
    assert structured_limit(model) == pytest.approx((sum(sizes) - sizes[-1]) / sum(sizes))
    out = compress(model, CompressionConfig(prune_amount=1.0, prune_method="structured", prune_scope=scope))
    assert _zero_share(out) == pytest.approx(structured_limit(model))
    assert structured_limit(nn.Sequential(nn.Linear(3, 2))) == 0.0


def test_structured_takes_the_nearest_number_of_units():
    # Units by mean |w| (size): layer 0 rows 1 (4), 2 (4); layer 1 rows 3 (2), 4 (2); classes 2x2.
    # 16 weights; removing units in that order zeroes 0, 4, 8, 10, 12 of them.
    model = nn.Sequential(_linear([[1.0] * 4, [2.0] * 4]), _linear([[3.0, 3.0], [4.0, 4.0]]),
                          _linear([[1.0, 1.0], [1.0, 1.0]]))
    # 25 % = 4 weights: the first unit.
    quarter = compress(model, CompressionConfig(prune_amount=0.25, prune_method="structured", prune_scope="global"))
    assert torch.equal(quarter[0].weight, torch.tensor([[0.0] * 4, [2.0] * 4]))
    assert torch.equal(quarter[1].weight, model[1].weight)
    # 45 % = round(7.2) = 7 weights: 8 is nearer than 4, so both units of layer 0.
    near = compress(model, CompressionConfig(prune_amount=0.45, prune_method="structured", prune_scope="global"))
    assert not near[0].weight.any() and torch.equal(near[1].weight, model[1].weight)
    # 37.5 % = 6 weights: 4 and 8 are equally near; the smaller change wins.
    assert _zero_share(compress(model, CompressionConfig(prune_amount=0.375, prune_method="structured", prune_scope="global"))) == 4 / 16
    # 60 % = round(9.6) = 10: three units.
    assert _zero_share(compress(model, CompressionConfig(prune_amount=0.6, prune_method="structured", prune_scope="global"))) == 10 / 16


def test_global_structured_ranks_units_by_mean_not_by_l1_norm():
    # Row means 3, 1.5 | 2, 5; L1 norms 12, 6 | 4, 10. Pruning one unit of four:
    # the mean picks the first layer's second row, the L1 norm would pick row 0 of layer 2.
    model = nn.Sequential(
        _linear([[3.0] * 4, [1.5] * 4]), _linear([[2.0, 2.0], [5.0, 5.0]]), _linear([[1.0, 1.0]] * 3)
    )
    out = compress(model, CompressionConfig(prune_amount=0.25, prune_method="structured", prune_scope="global"))
    assert torch.equal(out[0].weight, torch.tensor([[3.0] * 4, [0.0] * 4]))
    assert torch.equal(out[1].weight, model[1].weight)


@pytest.mark.parametrize("method", PRUNE_METHODS)
def test_full_pruning_runs_on_the_bias_path(method):
    model = _model("lenet5").eval()
    out = compress(model, CompressionConfig(prune_amount=1.0, prune_method=method, prune_scope="global"))
    layers = prunable_layers(out)
    pruned = layers[:-1] if method in STRUCTURED else layers
    assert all(not layer.weight.any() for _, layer in pruned)
    if method in STRUCTURED:
        assert torch.equal(layers[-1][1].weight, prunable_layers(model)[-1][1].weight)
    y = out(torch.randn(2, 1, 8, 8))
    assert y.shape == (2, 3) and torch.isfinite(y).all()
    if method not in STRUCTURED:  # every weight zero: the output is the last bias
        assert torch.equal(y, out[-1].bias.expand(2, 3))


def test_integer_amount_one_means_everything():
    # prune's own API reads an int amount as a count; the config's 1 is 100 %.
    out = compress(_model("mlp"), CompressionConfig(prune_amount=1, prune_method="magnitude", prune_scope="layer"))
    assert all(not layer.weight.any() for _, layer in prunable_layers(out))


def test_model_without_prunable_layers_is_copied():
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    out = compress(model, CompressionConfig(prune_amount=0.5, prune_method="structured", weight_bits=2))
    assert out is not model and len(out) == 2


def test_no_op_config_returns_an_equal_copy():
    model = _model("mlp")
    out = compress(model, CompressionConfig())
    assert out is not model
    for (k, v), (k2, v2) in zip(model.state_dict().items(), out.state_dict().items()):
        assert k == k2 and torch.equal(v, v2) and v.data_ptr() != v2.data_ptr()


# ------------------------------------------------------------ quantization, by hand


def test_symmetric_2bit_minmax_is_ternary_with_step_max():
    w = torch.tensor([[-2.0, -0.9, 0.3, 1.2, 0.0]])
    scale, zero_point, qmin, qmax = quantization_params(w, 2, "symmetric", "per_tensor", "minmax")
    assert (float(scale), int(zero_point), qmin, qmax) == (2.0, 0, -1, 1)
    # w / 2 = [-1, -0.45, 0.15, 0.6, 0] -> codes [-1, 0, 0, 1, 0]
    out = quantize_weight(w, 2, "symmetric", "per_tensor", "minmax")
    assert torch.equal(out, torch.tensor([[-2.0, 0.0, 0.0, 2.0, 0.0]]))
    assert torch.equal(quantization_levels(w, 2, "symmetric", "per_tensor", "minmax"), torch.tensor([-2.0, 0.0, 2.0]))


def test_affine_3bit_minmax_matches_the_reference_formula():
    w = torch.tensor([[-0.5, 0.0, 0.3, 0.6, 1.25]])
    scale, zero_point, qmin, qmax = quantization_params(w, 3, "affine", "per_tensor", "minmax")
    # s = (1.25 - (-0.5)) / 7 = 0.25; z = clamp(0 - round(-0.5 / 0.25), 0, 7) = 2
    assert (float(scale), int(zero_point), qmin, qmax) == (0.25, 2, 0, 7)
    # codes round(w / s) + z = [0, 2, 3 (1.2+2), 4 (2.4+2), 7] -> (q - z) * s
    expected = torch.tensor([[-0.5, 0.0, 0.25, 0.5, 1.25]])
    assert torch.equal(quantize_weight(w, 3, "affine", "per_tensor", "minmax"), expected)


def test_affine_all_positive_channel_keeps_zero_at_code_zero():
    w = torch.tensor([[0.0, 0.2, 0.8], [-0.6, -0.25, 0.0]])
    scale, zero_point, _, _ = quantization_params(w, 2, "affine", "per_channel", "minmax")
    # row 0: range [0, 0.8], s = 0.8/3, z = 0; row 1: range [-0.6, 0], s = 0.2, z = 3
    # (-0.25 / 0.2 = -1.25 -> code 2 -> -0.2; 0.2 / (0.8/3) = 0.75 -> code 1)
    assert torch.allclose(scale, torch.tensor([0.8 / 3, 0.2])) and zero_point.tolist() == [0, 3]
    out = quantize_weight(w, 2, "affine", "per_channel", "minmax")
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


def test_one_bit_is_the_same_binary_code_for_every_range_setting():
    w = torch.tensor([[0.5, -1.0, 0.0, 1.5], [-0.2, 0.4, 0.0, 0.0]])
    codes = [quantize_weight(w, 1, "symmetric", "per_channel", r) for r in QUANT_RANGES]
    assert all(torch.equal(codes[0], c) for c in codes[1:])
    # mean |w| is the least-squares level of a sign code: any other level is worse
    best = (codes[0] - w).square().sum()
    for factor in (0.9, 1.1):
        assert ((codes[0] * factor - w).square().sum() > best)
    assert "sign(w)" in range_notice(1, "mse")


# ------------------------------------------------------------ range setting, by hand


def test_twn_threshold_and_level_by_hand():
    # mean|w| = (0.1 + 0.2 + 1.0 + 0.3) / 4 = 0.4; D = 0.7 * 0.4 = 0.28;
    # above D: 1.0 and -0.3, so a = (1.0 + 0.3) / 2 = 0.65.
    w = torch.tensor([[0.1, 0.2, 1.0, -0.3]])
    for scheme in QUANT_SCHEMES:  # TWN's code is ternary for either scheme
        out = quantize_weight(w, 2, scheme, "per_tensor", "twn")
        assert torch.allclose(out, torch.tensor([[0.0, 0.0, 0.65, -0.65]]))
        assert torch.allclose(quantization_levels(w, 2, scheme, "per_tensor", "twn"), torch.tensor([-0.65, 0.0, 0.65]))
    scale, zero_point, qmin, qmax = quantization_params(w, 2, "symmetric", "per_tensor", "twn")
    assert float(scale) == pytest.approx(0.65) and (int(zero_point), qmin, qmax) == (0, -1, 1)
    # Pruned zeros do not lower the threshold (means over kept weights); an empty row stays empty.
    pruned = torch.tensor([[0.1, 0.0, 0.2, 1.0, 0.0, -0.3], [0.0] * 6])
    out = quantize_weight(pruned, 2, "symmetric", "per_channel", "twn")
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 0.0, 0.65, 0.0, -0.65], [0.0] * 6]))
    assert torch.isfinite(quantization_levels(pruned, 2, "symmetric", "per_channel", "twn")).all()


def test_twn_is_a_two_bit_code_and_elsewhere_means_mse():
    w = torch.randn(4, 9, generator=torch.Generator().manual_seed(0))
    assert range_used(2, "twn") == "twn" and range_used(3, "twn") == "mse" and range_used(3, "minmax") == "minmax"
    for bits in (3, 4, 8):
        assert torch.equal(quantize_weight(w, bits, "symmetric", "per_channel", "twn"),
                           quantize_weight(w, bits, "symmetric", "per_channel", "mse"))
        assert "2-bit" in range_notice(bits, "twn")
    assert range_notice(2, "twn") is None and range_notice(4, "mse") is None
    assert CompressionConfig(weight_bits=4, quant_range="twn").range_used == "mse"
    with pytest.raises(ValueError, match="quant_range"):
        CompressionConfig(quant_range="kmeans")


def _error(w: torch.Tensor, out: torch.Tensor) -> float:
    return float((out - w).square().sum())


def test_mse_clip_by_hand_and_by_brute_force():
    # w = [1, 1, 1, 1, 3], ternary (2 bits symmetric): with step c and threshold c/2,
    # c = 3 (minmax) keeps only the 3: error 4 * 1^2 = 4. A c in (1, 2) rounds every weight
    # to c: error 4 (c - 1)^2 + (3 - c)^2, least at c = 1.4 (error 3.2). On the grid of
    # ratios k/100 of max|w| = 3 the best is k = 47, c = 1.41: 4 * 0.41^2 + 1.59^2 = 3.2005.
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0, 3.0]])
    out = quantize_weight(w, 2, "symmetric", "per_tensor", "mse")
    assert torch.allclose(out, torch.full_like(w, 1.41))
    assert _error(w, out) == pytest.approx(3.2005, abs=1e-4)
    assert _error(w, quantize_weight(w, 2, "symmetric", "per_tensor", "minmax")) == pytest.approx(4.0)
    # Brute force over a fine grid of c: nothing beats 3.2, and the search is within 0.001 of it.
    fine = [3.0 * k / 30000 for k in range(1, 30001)]
    brute = min(sum((min(max(round(x / c), -1), 1) * c - x) ** 2 for x in w[0].tolist()) for c in fine)
    assert brute == pytest.approx(3.2, abs=1e-6) and _error(w, out) - brute < 1e-3


@pytest.mark.parametrize("pruned", [False, True])
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("scheme", QUANT_SCHEMES)
def test_mse_search_equals_a_loop_over_the_candidates(bits, scheme, pruned):
    # The vectorized search against a plain loop: each candidate clip as its own minmax quantization.
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(3, 20, generator=gen) ** 3  # heavy tails: clipping pays
    w[0, :3] = 0.0
    if pruned:  # most weights zero, a different number per row (the search then drops zeros)
        w[torch.rand(w.shape, generator=gen) < torch.tensor([[0.9], [0.6], [0.8]])] = 0.0
    out = quantize_weight(w, bits, scheme, "per_channel", "mse")
    for row, got in zip(w, out):
        errors = []
        for ratio in CLIP_RATIOS.tolist():
            clipped = row.clamp(row.min() * ratio, row.max() * ratio) if scheme == "affine" else row.clamp(
                -row.abs().max() * ratio, row.abs().max() * ratio)
            # minmax of the clipped row has exactly the candidate's range (the extremes are clipped to it)
            candidate = quantize_weight(clipped[None], bits, scheme, "per_tensor", "minmax")[0]
            errors.append(_error(row, torch.where(row == 0, 0.0, candidate)))
        assert _error(row, got) == pytest.approx(min(errors), rel=1e-5, abs=1e-7)
        assert _error(row, got) <= errors[-1] + 1e-7  # errors[-1]: ratio 1, the minmax error
        assert (got[row == 0] == 0).all()


@pytest.mark.parametrize("bits", QUANT_BITS)
@pytest.mark.parametrize("scheme", QUANT_SCHEMES)
@pytest.mark.parametrize("granularity", QUANT_GRANULARITIES)
def test_mse_is_never_worse_than_minmax(bits, scheme, granularity):
    w = torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(bits))
    mse = quantize_weight(w, bits, scheme, granularity, "mse")
    minmax = quantize_weight(w, bits, scheme, granularity, "minmax")
    assert _error(w, mse) <= _error(w, minmax) * (1 + 1e-6)


def test_mse_at_two_bits_keeps_most_gaussian_weights_minmax_zeroes_them():
    w = torch.randn(16, 400, generator=torch.Generator().manual_seed(0))
    minmax = quantize_weight(w, 2, "symmetric", "per_channel", "minmax")
    mse = quantize_weight(w, 2, "symmetric", "per_channel", "mse")
    assert (minmax == 0).float().mean() > 0.85  # step max|w| ~ 3 sigma: |w| < 1.5 sigma rounds to 0
    assert (mse == 0).float().mean() < 0.5


@pytest.mark.parametrize("quant_range", QUANT_RANGES)
@pytest.mark.parametrize("bits", QUANT_BITS)
@pytest.mark.parametrize("scheme", QUANT_SCHEMES)
@pytest.mark.parametrize("granularity", QUANT_GRANULARITIES)
def test_distinct_values_fit_in_the_bit_width(bits, scheme, granularity, quant_range):
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(6, 3, 5, 5, generator=gen) * torch.rand(6, 1, 1, 1, generator=gen)
    w[w.abs() < 0.1] = 0.0  # some pruned weights
    w_before = w.clone()
    out = quantize_weight(w, bits, scheme, granularity, quant_range)
    assert torch.equal(w, w_before) and out.shape == w.shape and out.dtype == w.dtype
    assert (out[w == 0] == 0).all()
    levels = quantization_levels(w, bits, scheme, granularity, quant_range)
    ternary = bits == 2 and (scheme == "symmetric" or quant_range == "twn")
    limit = 3 if bits == 1 or ternary else 2**bits - 1 if scheme == "symmetric" else 2**bits
    assert levels.shape[-1] == (2 if bits == 1 else limit)  # the levels the Weights page draws
    rows = out.flatten(1) if granularity == "per_channel" else out.reshape(1, -1)
    for i, row in enumerate(rows):
        assert len(row.unique()) <= limit
        allowed = torch.cat([levels.reshape(-1, levels.shape[-1])[i], torch.zeros(1)])
        assert torch.isclose(row[:, None], allowed[None, :], rtol=0, atol=1e-6).any(1).all()


@pytest.mark.parametrize("quant_range", QUANT_RANGES)
@pytest.mark.parametrize("bits", QUANT_BITS)
@pytest.mark.parametrize("scheme", QUANT_SCHEMES)
@pytest.mark.parametrize("granularity", QUANT_GRANULARITIES)
def test_all_zero_and_subnormal_weights_give_no_nan(bits, scheme, granularity, quant_range):
    zeros = torch.zeros(4, 3)
    scale, _, _, _ = quantization_params(zeros, bits, scheme, granularity, quant_range)
    assert (scale == 1.0).all()  # the placeholder
    assert torch.equal(quantize_weight(zeros, bits, scheme, granularity, quant_range), zeros)
    assert torch.isfinite(quantization_levels(zeros, bits, scheme, granularity, quant_range)).all()
    tiny = torch.tensor([[0.0, 1e-40, -3e-40], [0.0, 0.0, 0.0]])
    out = quantize_weight(tiny, bits, scheme, granularity, quant_range)
    assert torch.isfinite(out).all() and (out[tiny == 0] == 0).all()


def test_bad_quantization_arguments_fail_loudly():
    with pytest.raises(ValueError, match="bits"):
        quantize_weight(torch.ones(2, 2), 32, "symmetric", "per_tensor")
    with pytest.raises(ValueError, match="scheme"):
        quantization_params(torch.ones(2, 2), 4, "log", "per_tensor")
    with pytest.raises(ValueError, match="quant_range"):
        quantize_weight(torch.ones(2, 2), 4, "symmetric", "per_tensor", "percentile")


# ------------------------------------------------------------ invariants, every setting


@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_every_setting_runs_without_nan_and_keeps_pruned_weights_zero(name):
    model = _model(name).eval()
    before = _snapshot(model)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for method, scope, amount in itertools.product(PRUNE_METHODS, PRUNE_SCOPES, (0.0, 0.5, 1.0)):
        base = CompressionConfig(prune_amount=amount, prune_method=method, prune_scope=scope, seed=7)
        pruned_only = prunable_layers(compress(model, base))
        # every bit width with the default range; the other ranges where they differ most
        settings = [*itertools.product(WEIGHT_BITS, ["mse"]), *itertools.product((1, 2, 3), ["minmax", "twn"])]
        for (bits, rng), scheme, gran in itertools.product(settings, QUANT_SCHEMES, QUANT_GRANULARITIES):
            cfg = replace(base, weight_bits=bits, quant_scheme=scheme, quant_granularity=gran, quant_range=rng)
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
    for method, quant_range in itertools.product(PRUNE_METHODS, QUANT_RANGES):
        cfg = CompressionConfig(prune_amount=0.7, prune_method=method, prune_scope="global", weight_bits=2, quant_scheme="affine", quant_granularity="per_channel", quant_range=quant_range)
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
