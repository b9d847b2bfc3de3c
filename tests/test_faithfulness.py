"""core.explain.faithfulness: deletion / insertion AUC on hand-built models, infidelity via Captum, both against chance."""
import math

import pytest
import torch
from torch import nn

from core.explain.faithfulness import area, blur, deletion_insertion, infidelity, infidelity_against_random, ranks


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


# --- against chance -------------------------------------------------------------------------


class OnePixel(nn.Module):
    """Two classes; the logit of class 0 is 4 x pixel (1, 2) and nothing else matters."""

    def forward(self, x):
        logit = 4.0 * x[:, 0, 1, 2]
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def one_pixel_inputs(n: int = 256) -> torch.Tensor:
    x = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(3)) * 0.5
    x[:, 0, 1, 2] = 1.0   # the one pixel that matters is bright: class 0
    x[:, 0, 3, 3] = -1.0  # and every image has a black pixel (its minimum)
    return x


def test_the_right_map_beats_random_and_a_constant_map_is_chance():
    x, model = one_pixel_inputs(), OnePixel()
    target = torch.zeros(len(x), dtype=torch.long)
    right = torch.zeros(len(x), 4, 4)
    right[:, 1, 2] = 1.0
    good = deletion_insertion(model, x, right, target, steps=16, random_orderings=4)
    flat = deletion_insertion(model, x, torch.ones(len(x), 4, 4), target, steps=16, random_orderings=4)
    # The right map deletes the pixel first: p falls from sigmoid(4) to sigmoid(-4) after one step.
    high, low = torch.sigmoid(torch.tensor(4.0)).item(), torch.sigmoid(torch.tensor(-4.0)).item()
    assert good["deletion_curve"][:, 1] == pytest.approx([low] * len(x), abs=1e-5)
    assert good["deletion"].mean().item() == pytest.approx((high / 2 + 15 * low + low / 2) / 16, abs=1e-5)
    # A random ordering deletes it at a uniformly random step: AUC about (high + low) / 2.
    assert good["deletion_random"].mean().item() == pytest.approx((high + low) / 2, abs=0.05)
    assert good["deletion_gain"].mean() > 0.4
    # Insertion starts from the blurred image, where the bright pixel already shows (p about 0.8): a
    # smaller, still positive gain for every image.
    assert (good["insertion_gain"] > 0).all()
    # A constant map has no ranking: its ties are broken at random, so it scores chance.
    assert abs(flat["deletion_gain"].mean().item()) < 0.06 and abs(flat["insertion_gain"].mean().item()) < 0.06
    assert torch.equal(flat["deletion_gain"], deletion_insertion(model, x, torch.ones(len(x), 4, 4), target,
                                                                 steps=16, random_orderings=4)["deletion_gain"])


def test_ties_are_not_broken_in_raster_order():
    # With a constant map the old (stable) ranking deleted pixel (0, 0) first in every image.
    x = one_pixel_inputs(64)
    generator = torch.Generator().manual_seed(0)
    first = (ranks(torch.ones(64, 4, 4), generator) == 0).float().sum(0)
    assert (first > 0).sum() >= 10  # many different pixels come first
    # ties are broken only among equal values: a strict order is kept exactly
    strict = torch.arange(16.0).flip(0).view(1, 4, 4).expand(64, 4, 4)
    assert torch.equal(ranks(strict, generator), torch.arange(16).expand(64, 16))
    assert x.shape == (64, 1, 4, 4)


def test_chance_level_reuses_the_shared_images_and_leaves_inputs_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, maps = torch.randn(5, 1, 4, 4), torch.randn(5, 4, 4)
    before, calls = x.clone(), []
    hook = model.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    plain = deletion_insertion(model, x, maps, steps=4)
    calls.clear()
    both = deletion_insertion(model, x, maps, model(x).argmax(1), steps=4, random_orderings=2)
    # 5 images x (3 shared + 2 curves x 3 inner steps x 3 orderings), in one batch of 105
    assert calls[-1] == 5 * (3 + 2 * 3 * 3)
    hook.remove()
    assert torch.equal(x, before)
    for key in ("deletion", "insertion", "deletion_curve", "insertion_curve"):
        assert torch.allclose(plain[key], both[key]), key  # the map's own curve does not change
    assert torch.allclose(both["deletion_gain"], both["deletion_random"] - both["deletion"])
    ends = deletion_insertion(model, x, maps, steps=1, random_orderings=1)  # no inner step at all
    assert ends["deletion_curve"].shape == (5, 2) and torch.allclose(ends["deletion_gain"], torch.zeros(5))


def test_infidelity_gain_is_one_for_the_exact_signed_map_and_near_zero_for_noise():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 16, generator=torch.Generator().manual_seed(1)))
    x = torch.rand(128, 1, 4, 4)
    target = torch.zeros(128, dtype=torch.long)
    exact = model[1].weight[0].detach().view(1, 4, 4).expand(128, 4, 4)
    good = infidelity_against_random(model, x, exact, target, n_samples=8)
    assert good["infidelity"].max().item() < 1e-6 and good["infidelity_gain"] == pytest.approx(1.0, abs=1e-5)
    noise = torch.randn(128, 4, 4, generator=torch.Generator().manual_seed(7))
    chance = infidelity_against_random(model, x, noise, target, n_samples=8, random_maps=2)
    assert abs(chance["infidelity_gain"]) < 0.15
    assert chance["infidelity_random"].shape == (128,)
