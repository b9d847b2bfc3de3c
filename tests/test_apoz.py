"""Pruning by activations ("apoz", Hu et al. 2016): APoZ values by hand, the order units are removed in,
and the statistics measured once per original model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.compression import CompressionConfig, compress, set_calibration
from core.compression import units
from core.compression.steps import Context
from core.layers import prunable_layers


def _linear(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def _tiny() -> nn.Sequential:
    # Hidden unit 0 fires on x0 > 0, unit 1 on x1 > 1, unit 2 never (bias -100), unit 3 always (bias 100).
    return nn.Sequential(
        _linear([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]], [0.0, -1.0, -100.0, 100.0]), nn.ReLU(),
        _linear([[1.0] * 4] * 2, [0.0, 0.0]),
    )


X = torch.tensor([[1.0, 0.0], [-1.0, 2.0], [2.0, 3.0], [-3.0, 0.5]])  # 4 images of 2 pixels


def test_apoz_by_hand_on_a_tiny_input():
    model = _tiny()
    groups = units.unit_groups(model)
    # unit 0: x0 = 1, -1, 2, -3 -> zeros at images 2 and 4: 2/4. unit 1: x1 - 1 = -1, 1, 2, -0.5 -> 2/4.
    # unit 2: always 0 -> 1. unit 3: never 0 -> 0.
    (values,) = units.apoz(model, X, groups)
    torch.testing.assert_close(values, torch.tensor([0.5, 0.5, 1.0, 0.0]))


def test_apoz_of_a_conv_counts_every_position():
    conv = nn.Conv2d(1, 2, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.zero_()
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    x = torch.tensor([[[[1.0, -2.0], [0.0, 3.0]]], [[[-1.0, -1.0], [-1.0, 5.0]]]])  # 2 images x 4 positions
    # Filter 0 (identity): zeros where x <= 0: 2 of 4, then 3 of 4 -> 5/8. Filter 1 (-x): zeros where
    # x >= 0: 3 of 4 (1, 0, 3), then 1 of 4 -> 4/8 (the pixel 0 is a zero of both).
    (values,) = units.apoz(model, x, units.unit_groups(model))
    torch.testing.assert_close(values, torch.tensor([5 / 8, 4 / 8]))


def test_a_unit_that_never_fires_is_pruned_first():
    model = _tiny()
    # The weights say unit 2 is strongest (mean |w| 1, like 3; units 0 and 1: 0.5): structured keeps it.
    # 8 weights in the hidden layer + 8 in the classes: one unit (2 weights) is 1/8.
    out = compress(model, CompressionConfig(prune_amount=0.125, prune_method="apoz"), calibration=X)
    assert torch.equal((out[0].weight == 0).all(1), torch.tensor([False, False, True, False]))
    weights = compress(model, CompressionConfig(prune_amount=0.125, prune_method="structured"))
    assert (weights[0].weight[2] != 0).all()
    # Two units: unit 2 (APoZ 1), then of units 0 and 1 (both 1/2) the one with the smaller mean |w|: a tie
    # too (0.5 each), so the first. Unit 3 (APoZ 0) stays.
    two = compress(model, CompressionConfig(prune_amount=0.25, prune_method="apoz"), calibration=X)
    assert torch.equal((two[0].weight == 0).all(1), torch.tensor([True, False, True, False]))
    assert torch.equal(two[2].weight, model[2].weight)  # the classes are never removed


def test_units_without_a_relu_rank_last_by_their_weights():
    # No ReLU after the hidden layer: every APoZ is 0, so the order is the weight ranking.
    model = nn.Sequential(_linear([[3.0, 3.0], [1.0, 1.0], [2.0, 2.0]], [0.0] * 3), _linear([[1.0] * 3] * 2, [0.0] * 2))
    (values,) = units.apoz(model, X, units.unit_groups(model))
    assert not values.any()
    out = compress(model, CompressionConfig(prune_amount=0.2, prune_method="apoz"), calibration=X)
    assert torch.equal((out[0].weight == 0).all(1), torch.tensor([False, True, False]))


def test_apoz_is_measured_once_per_original_model(monkeypatch):
    model = _tiny()
    set_calibration(model, X)
    calls = []
    real = units.apoz
    monkeypatch.setattr(units, "apoz", lambda *a: calls.append(1) or real(*a))
    for amount in (0.125, 0.25, 0.4):
        compress(model, CompressionConfig(prune_amount=amount, prune_method="apoz"))
    compress(model, CompressionConfig(prune_amount=0.25, prune_method="apoz", prune_scope="layer"))
    assert len(calls) == 1


def test_apoz_needs_calibration_images_and_says_so():
    with pytest.raises(ValueError, match="calibration images"):
        compress(_tiny(), CompressionConfig(prune_amount=0.25, prune_method="apoz"))


def test_apoz_leaves_the_input_and_its_hooks_alone():
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    units.apoz(model, X, units.unit_groups(model))
    compress(model, CompressionConfig(prune_amount=0.5, prune_method="apoz"), calibration=X)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())
    assert Context(model).memo("unused", lambda: 1) == 1  # the memo is per model, no side effect
    assert len(prunable_layers(model)) == 2


def test_apoz_is_described_in_words():
    assert CompressionConfig(prune_amount=0.4, prune_method="apoz").describe().startswith(
        "40% pruning by activations (APoZ, global)")
