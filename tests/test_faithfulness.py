"""core.faithfulness: deletion / insertion AUC on a hand-built model, infidelity via Captum."""
import math

import pytest
import torch
from torch import nn

from core.faithfulness import area, blur, deletion_insertion, infidelity


class MeanProbability(nn.Module):
    """Two classes with p(class 0) = mean pixel value (inputs in [0, 1]): hand-checkable."""

    def forward(self, x):
        p = x.flatten(1).mean(1).clamp(1e-6, 1 - 1e-6)
        return torch.stack([p.log(), (1 - p).log()], dim=1)


def test_area_is_the_reference_trapezoid():
    # (sum - first/2 - last/2) / (n - 1): for 1, .5, 0 -> (1.5 - .5 - 0) / 2 = 0.5
    assert area(torch.tensor([1.0, 0.5, 0.0])).item() == pytest.approx(0.5)
    assert area(torch.ones(2, 11)).tolist() == pytest.approx([1.0, 1.0])


def test_deletion_on_a_hand_built_model_and_map():
    x = torch.tensor([0.4, 0.3, 0.2, 0.1]).view(1, 1, 2, 2)
    good = torch.tensor([4.0, 3.0, 2.0, 1.0]).view(1, 2, 2)   # ranks the bright pixels first
    bad = -good                                                # ranks them last
    model, target = MeanProbability(), torch.tensor([0])
    zero = torch.zeros(1, 1, 1, 1)
    d_good = deletion_insertion(model, x, good, target, steps=4, baseline=zero)
    d_bad = deletion_insertion(model, x, bad, target, steps=4, baseline=zero)
    # deleting 0.4, 0.3, 0.2, 0.1 in turn: mean = .25, .15, .075, .025, 0
    curve = torch.tensor([0.25, 0.15, 0.075, 0.025, 0.0])
    assert d_good["deletion_curve"][0].tolist() == pytest.approx(curve.tolist(), abs=1e-5)
    assert d_good["deletion"].item() == pytest.approx((0.5 - 0.125 - 0) / 4, abs=1e-5)
    # the reverse order: .25, .225, .175, .1, 0
    assert d_bad["deletion"].item() == pytest.approx((0.75 - 0.125) / 4, abs=1e-5)
    assert d_good["deletion"] < d_bad["deletion"]        # the faithful map deletes faster
    assert d_good["insertion"] > d_bad["insertion"]      # and restores faster
    # insertion ends at the full image: p = 0.25
    assert d_good["insertion_curve"][0, -1].item() == pytest.approx(0.25, abs=1e-5)


def test_default_baseline_is_black_and_curves_start_at_the_prediction():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randn(5, 1, 4, 4)
    maps = torch.randn(5, 4, 4)
    before = x.clone()
    out = deletion_insertion(model, x, maps, steps=8)
    assert torch.equal(x, before)
    probs = model(x).softmax(1).max(1).values
    assert out["deletion_curve"][:, 0] == pytest.approx(probs.tolist(), abs=1e-5)
    assert out["deletion"].shape == (5,) and out["insertion_curve"].shape == (5, 9)
    # all pixels deleted = the black image for every image (its own minimum everywhere)
    black = x.amin(dim=(1, 2, 3), keepdim=True).expand_as(x)
    assert out["deletion_curve"][:, -1].tolist() == pytest.approx(
        model(black).softmax(1).gather(1, model(x).argmax(1, keepdim=True)).squeeze(1).tolist(), abs=1e-5)


def test_blur_keeps_shape_and_smooths():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 14, 14] = 1.0
    y = blur(x)
    assert y.shape == x.shape and y.max() < 0.1 and y.sum().item() == pytest.approx(1.0, rel=0.05)


def test_infidelity_is_zero_for_the_exact_attribution_of_a_linear_model():
    # For f(x) = w.x, f(x) - f(x - I) = I.w exactly, so the attribution w has zero infidelity.
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
    x = torch.rand(3, 1, 2, 2)
    exact = model[1].weight[0].view(1, 2, 2).expand(3, 2, 2)
    target = torch.zeros(3, dtype=torch.long)
    state = torch.random.get_rng_state()
    good = infidelity(model, x, exact, target)
    wrong = infidelity(model, x, exact.flip(-1), target)
    assert torch.equal(state, torch.random.get_rng_state())
    assert good.shape == (3,) and good.max().item() < 1e-6
    assert (wrong > 1e-3).all() and not math.isnan(wrong.sum().item())
    assert torch.equal(good, infidelity(model, x, exact, target))  # reproducible
