"""Populations and forgotten examples (Hooker et al. 2019): hand-written predictions, known answers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from scipy.stats import ttest_ind
from torch import nn

from core.studies import population as P
from core.compression import CompressionConfig
from core.figures.population import class_impact_figure, pie_curve_figure, pie_gallery_row
from core.training import TrainConfig


def linear(weight, bias) -> nn.Module:
    """Flatten + Linear(4, K) with the given parameters, in eval mode."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, len(bias)))
    with torch.no_grad():
        model[1].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        model[1].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return model.eval()


def snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)


@pytest.fixture
def population() -> list[nn.Module]:
    gen = torch.Generator().manual_seed(3)
    return [linear(torch.randn(3, 4, generator=gen), [0.0, 0.0, 1.0]) for _ in range(3)]


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.randn(12, 1, 2, 2, generator=torch.Generator().manual_seed(4))


# ---------------------------------------------------------------- configs and predictions

def test_population_configs_differ_only_in_seed():
    configs = P.population_configs(TrainConfig(model="mlp", dataset="digits", seed=7), size=3)
    assert [c.seed for c in configs] == [7, 8, 9]
    assert {(c.model, c.dataset, c.epochs) for c in configs} == {("mlp", "digits", 20)}
    with pytest.raises(ValueError):
        P.population_configs(TrainConfig(), size=0)


def test_population_predictions_match_each_model(population, inputs):
    before = [snapshot(m) for m in population]
    preds, probs = P.population_predictions(population, inputs, batch=5)
    assert preds.shape == (3, 12) and preds.dtype == np.int64
    assert probs.shape == (3, 12, 3) and np.allclose(probs.sum(axis=2), 1.0, atol=1e-6)
    for i, model in enumerate(population):
        with torch.no_grad():
            assert np.array_equal(preds[i], model(inputs).argmax(1).numpy())
        assert_untouched(model, before[i])


def test_compress_population_seeds_random_pruning_per_member(population):
    before = [snapshot(m) for m in population]
    same = [population[0]] * 3
    compressed = P.compress_population(same, CompressionConfig(prune_amount=0.5, prune_method="random", seed=10))
    masks = [(m[1].weight == 0) for m in compressed]
    assert all(int(mask.sum()) == 6 for mask in masks)
    assert not torch.equal(masks[0], masks[1]) or not torch.equal(masks[1], masks[2])
    again = P.compress_population(same, CompressionConfig(prune_amount=0.5, prune_method="random", seed=10))
    assert all(torch.equal(a[1].weight, b[1].weight) for a, b in zip(compressed, again))
    for model, state in zip(population, before):
        assert_untouched(model, state)


# ---------------------------------------------------------------- modal prediction and PIEs

def test_modal_prediction_hand_written():
    preds = np.array([[0, 1, 2, 4],
                      [0, 2, 2, 4],
                      [1, 2, 1, 3]])
    assert P.modal_prediction(preds).tolist() == [0, 2, 2, 4]


def test_modal_prediction_ties_go_to_largest_label():
    assert P.modal_prediction(np.array([[3, 1], [1, 3]])).tolist() == [3, 3]
    assert P.modal_prediction(np.array([[0], [5], [2]])).tolist() == [5]
    assert P.modal_prediction(np.array([[0, 2], [0, 7], [2, 2], [2, 7]])).tolist() == [2, 7]
    assert P.modal_prediction(np.array([[4, 0]]), num_classes=10).tolist() == [4, 0]


def test_modal_prediction_rejects_empty():
    with pytest.raises(ValueError):
        P.modal_prediction(np.zeros((0, 3), dtype=int))


def test_pie_selection_on_hand_written_matrices():
    orig = np.array([[0, 1, 2, 3, 1],
                     [0, 1, 2, 3, 2],
                     [0, 1, 0, 3, 1]])          # modal: 0 1 2 3 1
    comp = np.array([[0, 2, 2, 1, 2],
                     [0, 2, 0, 3, 1],
                     [1, 1, 0, 1, 2]])          # modal: 0 2 0 1 2  (column 1: 2,2,1 -> 2; column 4: 2,1,2 -> 2)
    assert P.pie_mask(orig, comp).tolist() == [False, True, True, True, True]
    assert P.pie_rate(orig, comp) == pytest.approx(0.8)
    assert P.pie_rate(orig, orig) == 0.0


def test_forgotten_examples_confidence_drop_by_hand():
    # 2 members, 3 examples, 3 classes. Originals vote 0, 1, 2; compressed vote 0, 2, 0.
    orig_probs = np.array([[[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]],
                           [[0.6, 0.3, 0.1], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6]]])
    comp_probs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.1, 0.4]],
                           [[0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.7, 0.1, 0.2]]])
    orig_preds, comp_preds = orig_probs.argmax(2), comp_probs.argmax(2)
    frame = P.forgotten_examples(orig_preds, comp_preds, orig_probs, comp_probs, np.array([0, 2, 2]))
    # Example 1: mean p(class 1) (0.7 + 0.5) / 2 = 0.6 -> (0.3 + 0.2) / 2 = 0.25, drop 0.35.
    # Example 2: mean p(class 2) (0.8 + 0.6) / 2 = 0.7 -> (0.4 + 0.2) / 2 = 0.3, drop 0.4: listed first.
    assert frame["index"].tolist() == [2, 1]
    assert frame["label"].tolist() == [2, 2]
    assert frame["modal_original"].tolist() == [2, 1]
    assert frame["modal_compressed"].tolist() == [0, 2]
    assert frame["confidence_original"].tolist() == pytest.approx([0.7, 0.6])
    assert frame["confidence_compressed"].tolist() == pytest.approx([0.3, 0.25])
    assert frame["confidence_drop"].tolist() == pytest.approx([0.4, 0.35])


def test_forgotten_examples_sorted_by_drop():
    orig_probs = np.array([[[0.9, 0.1], [0.6, 0.4], [0.8, 0.2]]])
    comp_probs = np.array([[[0.4, 0.6], [0.3, 0.7], [0.1, 0.9]]])
    frame = P.forgotten_examples(orig_probs.argmax(2), comp_probs.argmax(2), orig_probs, comp_probs, [0, 0, 0])
    assert frame["index"].tolist() == [2, 0, 1]          # drops 0.7, 0.5, 0.3
    assert frame["confidence_drop"].tolist() == pytest.approx([0.7, 0.5, 0.3])


def test_forgotten_examples_empty_when_nothing_changes():
    probs = np.array([[[0.9, 0.1], [0.2, 0.8]]])
    frame = P.forgotten_examples(probs.argmax(2), probs.argmax(2), probs, probs, [0, 1])
    assert frame.empty and "confidence_drop" in frame.columns


# ---------------------------------------------------------------- per-class accuracy and Welch

def test_class_accuracy_by_hand():
    preds = np.array([[0, 0, 1, 1], [0, 1, 1, 0]])
    per_class, overall = P.class_accuracy(preds, np.array([0, 0, 1, 1]), 3)
    assert per_class.tolist() == [[1.0, 1.0, 0.0], [0.5, 0.5, 0.0]]   # class 2 has no examples: 0, not NaN
    assert overall.tolist() == [1.0, 0.5]


def _impact_inputs():
    orig_overall = np.full(4, 0.9)
    comp_overall = np.array([0.81, 0.80, 0.82, 0.79])             # about -10 % relative
    orig = np.full((4, 2), 0.9)
    comp = np.stack([[0.45, 0.46, 0.44, 0.47],                    # class 0: about -50 %: disparate
                     comp_overall + np.array([0.001, -0.002, 0.002, -0.001])], axis=1)  # class 1: like overall
    return orig, comp, orig_overall, comp_overall


def test_class_impact_flags_a_class_that_differs_and_not_one_that_matches():
    frame = P.class_impact(*_impact_inputs(), classes=["zero", "one"])
    assert frame["class"].tolist() == ["zero", "one"]
    assert frame["disparate"].tolist() == [True, False]
    assert frame["direction"].tolist() == ["worse", ""]
    assert frame.loc[0, "t"] < 0 and frame.loc[0, "p_value"] < 0.001 and frame.loc[1, "p_value"] > 0.5
    orig, comp, o_a, c_a = _impact_inputs()
    expected = ttest_ind((comp[:, 0] - 0.9) / 0.9, (c_a - o_a) / o_a, equal_var=False)
    assert frame.loc[0, "p_value"] == pytest.approx(expected.pvalue)
    assert frame.loc[0, "change"] == pytest.approx(0.455 - 0.9)
    assert frame.loc[0, "overall_change"] == pytest.approx(0.805 - 0.9)
    assert frame.loc[0, "relative_change"] == pytest.approx((0.455 - 0.9) / 0.9)


def test_class_impact_better_direction():
    orig, comp, o_a, c_a = _impact_inputs()
    comp[:, 0] = [0.90, 0.89, 0.91, 0.90]                         # class 0 barely changes: spared
    assert P.class_impact(orig, comp, o_a, c_a)["direction"].tolist() == ["better", ""]


def test_class_impact_degenerate_cases_give_no_nan():
    same = np.full((3, 2), 0.9)
    frame = P.class_impact(same, same, np.full(3, 0.9), np.full(3, 0.9))      # nothing changed: zero variance
    assert frame["degenerate"].all() and not frame["disparate"].any()
    assert frame["p_value"].tolist() == [1.0, 1.0] and frame["t"].tolist() == [0.0, 0.0]
    one = P.class_impact(np.array([[0.9]]), np.array([[0.1]]), np.array([0.9]), np.array([0.8]))  # one member
    assert one["degenerate"].all() and one["p_value"].tolist() == [1.0]
    # A class with recall 0 in the original has no relative change: that member is left out.
    zero = P.class_impact(np.array([[0.0], [0.0], [0.5]]), np.array([[0.2], [0.1], [0.4]]),
                          np.full(3, 0.9), np.array([0.8, 0.7, 0.85]))
    assert zero["degenerate"].all()
    for f in (frame, one, zero):
        assert not f.select_dtypes("number").isna().any().any()


def test_class_impact_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        P.class_impact(np.zeros((3, 2)), np.zeros((3, 3)), np.zeros(3), np.zeros(3))


# ---------------------------------------------------------------- curve and maps

def test_pie_curve_known_answers(population, inputs):
    before = [snapshot(m) for m in population]
    labels = torch.arange(12) % 3
    calls = []
    curve = P.pie_curve(population, inputs, labels, CompressionConfig(), [0.0, 1.0],
                        progress=lambda f, msg: calls.append(f))
    orig_preds, _ = P.population_predictions(population, inputs)
    modal = P.modal_prediction(orig_preds, 3)
    # 0 % pruning changes nothing; 100 % leaves only the bias (0, 0, 1): every model predicts class 2.
    assert curve["forgotten"].tolist() == [0, int((modal != 2).sum())]
    assert curve["rate"].tolist() == pytest.approx([0.0, (modal != 2).mean()])
    assert curve.loc[1, "accuracy_compressed"] == pytest.approx((labels == 2).float().mean().item())
    assert curve.loc[0, "accuracy_compressed"] == curve.loc[0, "accuracy_original"]
    assert calls == [0.5, 1.0] and curve.attrs["members"] == 3
    for model, state in zip(population, before):
        assert_untouched(model, state)


def test_population_maps_mean_of_member_maps(population, inputs):
    x, target = inputs[:2], torch.tensor([0, 2])
    raw = P.population_maps(population, x, target, "saliency", normalize=False)
    # Saliency of a linear model is |W[target]| (reshaped to the image), whatever the input.
    expected = torch.stack([m[1].weight.detach().abs() for m in population]).mean(0)[target].view(2, 2, 2)
    assert torch.allclose(raw, expected, atol=1e-6)
    scaled = P.population_maps(population, x, target, "saliency")
    per_member = [m[1].weight.detach().abs()[target] for m in population]
    expected = torch.stack([w / w.amax(1, keepdim=True) for w in per_member]).mean(0).view(2, 2, 2)
    assert torch.allclose(scaled, expected, atol=1e-6)


def test_population_maps_grad_cam_on_mlp_raises(population, inputs):
    with pytest.raises(ValueError, match="convolutional"):
        P.population_maps(population, inputs[:1], 0, "grad_cam")


# ---------------------------------------------------------------- figures

def test_pie_curve_figure_traces_and_caption():
    curve = pd.DataFrame({"sparsity": [0.0, 0.5, 0.9], "forgotten": [0, 2, 30], "rate": [0.0, 0.002, 0.03],
                          "accuracy_original": [0.98] * 3, "accuracy_compressed": [0.98, 0.97, 0.80]})
    fig = pie_curve_figure(curve, current_sparsity=0.5)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    assert list(fig.data[0].y) == pytest.approx([0.0, 0.2, 3.0])
    assert list(fig.data[1].y) == pytest.approx([0.0, 1.0, 18.0])
    assert "50 %" in fig.layout.meta["caption"] and "look" in fig.layout.meta["caption"].lower()


def test_class_impact_figure_marks_disparate_classes():
    frame = P.class_impact(*_impact_inputs(), classes=["zero", "one"])
    fig = class_impact_figure(frame)
    bars = fig.data[0]
    assert list(bars.y) == pytest.approx([-44.5, frame.loc[1, "change"] * 100])
    assert bars.marker.color[0] != bars.marker.color[1] and bars.marker.pattern.shape[0] != ""
    assert any("p = " in a.text for a in fig.layout.annotations)
    assert "zero" in fig.layout.meta["caption"]


def test_pie_gallery_row_titles():
    example = {"index": 7, "label": 3, "modal_original": 3, "modal_compressed": 5,
               "confidence_original": 0.9, "confidence_compressed": 0.2, "confidence_drop": 0.7}
    image, a = torch.rand(1, 4, 4), torch.rand(4, 4)
    copy = image.clone()
    fig = pie_gallery_row(image, a, a * 0.5, example, classes=[str(i) for i in range(10)])
    titles = [ann.text for ann in fig.layout.annotations]
    assert titles[0] == "#7, true 3<br>vote 3 → 5" and "90 %" in titles[1] and "20 %" in titles[2]
    assert "90 %" in fig.layout.meta["caption"] and torch.equal(image, copy)
