"""Explanation quality (core.explain.quality): hand-computed answers, degenerate cases, and the same
numbers as Quantus (Sparseness, Complexity, MaxSensitivity) and Captum (sensitivity_max) on small inputs.

Quantus is a test-only dependency (requirements-test.txt). Tie-breaking: none of these measures
depends on the order of tied pixels (the Gini index only reads the sorted values), so unlike Quantus'
PixelFlipping no tie rule has to be matched. Differences that remain: Quantus adds 1e-7 to every
|a| (Sparseness) and 1e-12 inside the log (Complexity), hence the tolerances; Quantus' Gini of a
one-hot map is 1 - 1/P where ours is scaled by P / (P - 1) to be exactly 1.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import quantus
import torch
from captum.attr import IntegratedGradients
from captum.metrics import sensitivity_max
from torch import nn

from core.explain import quality as Q
from core.explain.attribution import attribute, black

torch.set_num_threads(1)


def _maps() -> torch.Tensor:
    """Four 8x8 maps: Gaussian, one-hot, signed Gaussian with a zero patch, uniform."""
    g = torch.Generator().manual_seed(0)
    maps = torch.randn((4, 8, 8), generator=g)
    maps[1] = 0.0
    maps[1, 3, 3] = 2.0
    maps[2, :4, :4] = 0.0
    maps[3] = torch.rand((8, 8), generator=g)
    return maps


def _tanh_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).eval()


def _quantus(metric, maps: torch.Tensor) -> np.ndarray:
    a = maps.numpy()[:, None].copy()
    x = np.zeros_like(a)
    return np.asarray(metric(model=None, x_batch=x, y_batch=np.zeros(len(a), int), a_batch=a, s_batch=None))


# ---------------------------------------------------------------- sparseness and complexity by hand
def test_sparseness_of_one_hot_is_one_and_of_a_constant_map_zero():
    one_hot = torch.zeros(1, 5, 5)
    one_hot[0, 2, 1] = -3.0  # |a|: the sign does not matter
    assert Q.sparseness(one_hot).item() == pytest.approx(1.0)
    assert Q.sparseness(torch.full((1, 5, 5), 0.7)).item() == pytest.approx(0.0, abs=1e-12)


def test_sparseness_hand_computed():
    # sorted |a| = 0, 0, 1, 1: sum_k (2k - 5) a_k = 1 + 3 = 4, / (P * sum a) = 4 / 8 = 0.5, x P/(P-1) = 2/3
    assert Q.sparseness(torch.tensor([[[1.0, 0.0], [0.0, -1.0]]])).item() == pytest.approx(2 / 3)


def test_complexity_hand_computed():
    one_hot = torch.zeros(1, 4, 4)
    one_hot[0, 0, 0] = 5.0
    two = torch.zeros(1, 4, 4)
    two[0, 0, :2] = torch.tensor([1.0, -1.0])
    assert Q.complexity(one_hot).item() == pytest.approx(0.0)
    assert Q.complexity(two).item() == pytest.approx(math.log(2))
    assert Q.complexity(torch.ones(1, 4, 4)).item() == pytest.approx(math.log(16))


def test_an_all_zero_map_is_flagged_and_scored_as_flat_never_nan():
    maps = torch.zeros(2, 4, 4)
    maps[1, 1, 1] = 1.0
    assert Q.empty(maps).tolist() == [True, False]
    assert Q.sparseness(maps).tolist() == [0.0, pytest.approx(1.0)]
    assert Q.complexity(maps)[0].item() == pytest.approx(math.log(16))
    assert torch.isfinite(Q.sparseness(maps)).all() and torch.isfinite(Q.complexity(maps)).all()


def test_a_random_map_scores_between_the_extremes():
    noise = Q.random_maps((16, 28, 28), seed=1)
    assert float(Q.sparseness(noise).mean()) == pytest.approx(math.sqrt(2) - 1, abs=0.02)  # Gini of |N(0,1)|
    assert math.log(784) - 0.3 < float(Q.complexity(noise).mean()) < math.log(784)


# ---------------------------------------------------------------- against Quantus
def test_sparseness_matches_quantus():
    maps = _maps()
    theirs = _quantus(quantus.Sparseness(disable_warnings=True, normalise=False), maps)
    p = maps[0].numel()
    np.testing.assert_allclose(Q.sparseness(maps).numpy() * (p - 1) / p, theirs, atol=1e-5)


def test_complexity_matches_quantus():
    maps = _maps()
    theirs = _quantus(quantus.Complexity(disable_warnings=True, normalise=False), maps)
    np.testing.assert_allclose(Q.complexity(maps).numpy(), theirs, atol=1e-6)


def _sensitivity_setup(samples: int = 6):
    model = _tanh_mlp()
    x = torch.randn((5, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    target = model(x).argmax(1)
    noise = Q.uniform_noise((samples, *x.shape), 0.05, seed=3)
    return model, x, target, noise


def test_max_sensitivity_matches_captum():
    model, x, target, noise = _sensitivity_setup()
    mine = Q.max_sensitivity(Q.explainer(model, "saliency"), x, target, noise=noise)["sensitivity"]
    # Captum repeats each example `samples` times in a row (repeat_interleave): the same noise, reordered.
    interleaved = noise.transpose(0, 1).reshape(-1, *x.shape[1:])
    def explain(inputs, target):  # Captum passes the inputs as a tuple and wants a tuple back
        return (attribute(model, inputs[0] if isinstance(inputs, tuple) else inputs, target, "saliency"),)

    theirs = sensitivity_max(explain, x,
                             perturb_func=lambda inputs: inputs + interleaved, n_perturb_samples=len(noise),
                             target=target)
    assert (mine > 0).all()
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5)


def test_max_sensitivity_matches_quantus():
    model, x, target, noise = _sensitivity_setup()
    mine = Q.max_sensitivity(Q.explainer(model, "saliency"), x, target, noise=noise)["sensitivity"]
    step = [0]

    def perturb(arr, indices, **kwargs):  # Quantus draws once per sample for the whole batch
        step[0] += 1
        return arr + noise[step[0] - 1].reshape(len(arr), -1).numpy()

    def explain(model, inputs, targets, **kwargs):
        return attribute(model, torch.as_tensor(inputs), torch.as_tensor(targets), "saliency").numpy()[:, None]

    metric = quantus.MaxSensitivity(nr_samples=len(noise), perturb_func=perturb, normalise=False, abs=False,
                                    disable_warnings=True, return_nan_when_prediction_changes=False)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=None, explain_func=explain,
                    device="cpu")
    np.testing.assert_allclose(mine.numpy(), np.asarray(theirs), rtol=1e-5)


def test_a_map_that_does_not_depend_on_the_input_has_sensitivity_zero():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()  # saliency = |w| wherever x is
    x = torch.randn((3, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    out = Q.max_sensitivity(Q.explainer(linear, "saliency"), x, torch.tensor([0, 1, 2]))
    assert out["sensitivity"].abs().max().item() < 1e-6
    assert not out["empty"].any()


def test_a_zero_map_has_sensitivity_zero_and_is_flagged():
    dead = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    nn.init.zeros_(dead[1].weight)
    x = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    out = Q.max_sensitivity(Q.explainer(dead, "saliency"), x, torch.tensor([0, 1]))
    assert out["sensitivity"].tolist() == [0.0, 0.0] and out["empty"].all()


def test_a_map_redrawn_at_random_for_every_input_changes_by_about_root_two():
    model, x, target, _ = _sensitivity_setup()
    big = torch.zeros(2, 1, 28, 28)
    out = Q.max_sensitivity(lambda inputs, t: torch.zeros(len(inputs), 28, 28), big, torch.tensor([0, 1]),
                            samples=10)
    assert out["sensitivity_random"].numpy() == pytest.approx(math.sqrt(2), abs=0.15)


# ---------------------------------------------------------------- completeness
def test_integrated_gradients_is_complete_on_a_linear_model():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.randn((4, 1, 4, 4), generator=torch.Generator().manual_seed(4))
    target = torch.tensor([0, 1, 2, 1])
    maps = attribute(linear, x, target, "integrated_gradients")
    out = Q.completeness(linear, x, maps, target)
    with torch.no_grad():
        scores = linear(x).gather(1, target[:, None])[:, 0] - linear(black(x).expand_as(x)).gather(1, target[:, None])[:, 0]
    np.testing.assert_allclose(out["sum"].numpy(), scores.numpy(), rtol=1e-5, atol=1e-5)
    assert out["relative_gap"].max().item() < 1e-5
    assert out["relative_gap_random"].min().item() > 1e-3  # a random map of the same size is not complete


def test_completeness_gap_is_captums_convergence_delta():
    model = _tanh_mlp()
    x = torch.randn((3, 1, 4, 4), generator=torch.Generator().manual_seed(5))
    target = model(x).argmax(1)
    maps = attribute(model, x, target, "integrated_gradients", n_steps=8)
    _, delta = IntegratedGradients(model).attribute(x, baselines=black(x).expand_as(x), target=target, n_steps=8,
                                                    return_convergence_delta=True)
    np.testing.assert_allclose(Q.completeness(model, x, maps, target)["gap"].numpy(), delta.abs().numpy(),
                               rtol=1e-4, atol=1e-6)


def test_an_image_equal_to_its_baseline_is_flagged_not_divided_by_zero():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.full((1, 1, 4, 4), -0.4)  # all black: f(x) = f(baseline)
    maps = attribute(linear, x, torch.tensor([0]), "integrated_gradients")
    out = Q.completeness(linear, x, maps, torch.tensor([0]))
    assert out["no_change"].tolist() == [True] and out["relative_gap"].tolist() == [0.0]


# ---------------------------------------------------------------- everything together
@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_measure_leaves_model_and_inputs_unchanged_and_is_finite(method):
    model = _tanh_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn((6, 1, 4, 4), generator=torch.Generator().manual_seed(6))
    target = model(x).argmax(1)
    x_before, t_before = x.clone(), target.clone()
    measured = Q.measure(model, x, target, method, samples=3)
    assert torch.equal(x, x_before) and torch.equal(target, t_before)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    expected = {"sparseness", "complexity", "sensitivity", "deletion_gain", "insertion_gain"}
    assert expected <= set(measured)
    assert ("completeness" in measured) == (method == "integrated_gradients")
    summary = Q.summary(measured)
    assert summary["probes"] == 6 and all(math.isfinite(v) for v in summary.values())


def test_summary_of_a_dead_model_is_defined_and_counts_the_empty_maps():
    dead = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    nn.init.zeros_(dead[1].weight)
    x = torch.randn((4, 1, 4, 4), generator=torch.Generator().manual_seed(7))
    summary = Q.summary(Q.measure(dead, x, torch.zeros(4, dtype=torch.long), "integrated_gradients", samples=2))
    assert summary["empty"] == 4 and summary["no_change"] == 4
    assert summary["sparseness"] == 0.0 and summary["complexity"] == pytest.approx(math.log(16))
    assert summary["sensitivity"] == 0.0 and summary["completeness"] == 0.0
    assert all(math.isfinite(v) for v in summary.values())
