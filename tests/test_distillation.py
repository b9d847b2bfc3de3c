"""Knowledge and data distillation (core.distillation): the loss against a hand computation, α = 0 as plain
training bit for bit, k-center greedy on hand-made points, the teacher never changed, the disk cache.

Models are the small MLPs on scikit-learn's 8x8 digits, trained into a temporary cache.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from core.compression import CompressionConfig
from core.data import load_dataset
from core.distillation import coreset
from core.distillation.compare import compare, display_table, methods_for_all, verdict
from core.distillation.coreset import SubsetConfig, k_center_greedy, most_typical, select_subset, subset_models
from core.distillation.knowledge import (DistillConfig, distill, distillation_loss, soft_targets, student_problem,
                                         train_distilled)
from core.distillation.store import cache_path
from core.training import TrainConfig, load_or_train, train

torch.set_num_threads(1)
TEACHER = TrainConfig(model="mlp", dataset="digits", epochs=8)
STUDENT = DistillConfig(teacher=TEACHER, model="mlp32", epochs=3)


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def teacher(data, cache):
    return load_or_train(TEACHER, data, cache).model.requires_grad_(False)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, model.training, \
        [p.requires_grad for p in model.parameters()], [None if p.grad is None else p.grad.clone()
                                                          for p in model.parameters()]


def assert_unchanged(model, before):
    state, training, flags, grads = before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model.training == training and [p.requires_grad for p in model.parameters()] == flags
    for g, p in zip(grads, model.parameters()):  # (training leaves its last step's .grad: it must stay as it was)
        assert (g is None and p.grad is None) or torch.equal(g, p.grad)
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


# ---------------------------------------------------------------- the loss
def test_loss_equals_a_hand_computation_on_tiny_logits():
    z_s, z_t, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), torch.tensor([0])
    T, alpha = 2.0, 0.75
    # By hand: p_t = softmax([0, 1]) = (1/(1+e), e/(1+e)), p_s = softmax([0.5, 0]).
    pt = [1 / (1 + math.e), math.e / (1 + math.e)]
    ps = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    kl = sum(p * math.log(p / q) for p, q in zip(pt, ps))
    ce = -math.log(math.e / (math.e + 1))
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert distillation_loss(z_s, z_t, y, T, alpha).item() == pytest.approx(expected, rel=1e-6)


def test_the_soft_term_is_scaled_by_t_squared():
    torch.manual_seed(0)
    z_s, z_t, y = torch.randn(5, 4), torch.randn(5, 4), torch.randint(0, 4, (5,))
    for T in (1.0, 3.0, 8.0):
        kl = F.kl_div(F.log_softmax(z_s / T, 1), F.softmax(z_t / T, 1), reduction="batchmean")
        assert distillation_loss(z_s, z_t, y, T, 1.0).item() == pytest.approx(T * T * kl.item(), rel=1e-5)
    # Identical distributions: no soft loss at any T; only the labels' term is left.
    assert distillation_loss(z_t, z_t, y, 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(z_s, z_t, y, 4.0, 0.0).item() == pytest.approx(F.cross_entropy(z_s, y).item())


@pytest.mark.parametrize("temperature, alpha", [(0.0, 0.5), (-1.0, 0.5), (4.0, 1.5), (4.0, -0.1)])
def test_bad_settings_are_refused_in_words(temperature, alpha):
    with pytest.raises(ValueError, match="temperature|alpha"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), temperature, alpha)


# ---------------------------------------------------------------- training
def test_alpha_zero_is_plain_training_bit_for_bit(data, teacher):
    cfg = replace(STUDENT, alpha=0.0)
    distilled = train_distilled(cfg, teacher, data)
    plain = train(cfg.student_recipe(), data)
    assert all(torch.equal(a, b) for a, b in zip(distilled.state_dict().values(), plain.state_dict().values()))
    soft = train_distilled(STUDENT, teacher, data)
    assert not torch.equal(soft.state_dict()["1.weight"], plain.state_dict()["1.weight"])  # the teacher counts


def test_the_teacher_is_never_changed(data, teacher):
    before = snapshot(teacher)
    soft_targets(teacher, data.x_train)
    train_distilled(STUDENT, teacher, data)
    coreset.penultimate_features(teacher, data.x_train[:50])
    assert_unchanged(teacher, before)


def test_soft_targets_are_the_teachers_logits(data, teacher):
    with torch.no_grad():
        expected = teacher(data.x_train)
    assert torch.allclose(soft_targets(teacher, data.x_train, batch_size=100), expected, atol=1e-6)


def test_distill_caches_both_students_and_checks_the_config(data, teacher, cache):
    progress = []
    first = distill(STUDENT, teacher, data, lambda f, m: progress.append(f), cache)
    path = cache_path(STUDENT, "distilled", cache)
    assert path.exists() and progress and progress[-1] == 1.0 and progress == sorted(progress)
    again = distill(STUDENT, teacher, data, cache_dir=cache)
    for a, b in ((first.distilled, again.distilled), (first.label_only, again.label_only)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    label_only = load_or_train(STUDENT.student_recipe(), data, cache)
    assert label_only.from_cache  # the label-only student is the shared trained model of the student's recipe
    other = replace(STUDENT, temperature=2.0)
    assert cache_path(other, "distilled", cache) != path
    path.write_bytes(path.read_bytes()[:100])  # damaged: trained again, with a notice
    fixed = distill(STUDENT, teacher, data, cache_dir=cache)
    assert any("damaged" in n for n in fixed.notices)
    assert all(torch.equal(x, y) for x, y in zip(first.distilled.state_dict().values(),
                                                 fixed.distilled.state_dict().values()))


def test_a_student_not_smaller_than_its_teacher_gets_words(data):
    assert student_problem(STUDENT, data) is None
    words = student_problem(replace(STUDENT, model="lenet300"), data)
    assert "smaller than its teacher" in words and "lenet300" in words
    assert student_problem(replace(STUDENT, model="mlp"), data)  # the same size is not smaller either


# ---------------------------------------------------------------- k-center greedy
def test_k_center_greedy_on_hand_made_points():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.0, 5.0], [9.0, 0.0]])
    # From (0, 0): the farthest is (10, 0); then (0, 5) (5 from its nearest), then (1, 0) vs (9, 0): both 1, the first.
    assert k_center_greedy(points, 4, 0) == [0, 2, 3, 1]
    assert k_center_greedy(points, 1, 3) == [3]
    assert sorted(k_center_greedy(points, 5, 0)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        k_center_greedy(points, 6, 0)


def test_k_center_covers_better_than_its_worst_case():
    # A line of points: the greedy choice from one end halves the largest gap each time.
    line = np.arange(9, dtype=float)[:, None]
    assert k_center_greedy(line, 3, 0) == [0, 8, 4]
    assert most_typical(line) == 4 and most_typical(np.array([[0.0], [1.0], [10.0]])) == 1


def test_subsets_keep_every_class_and_the_same_sizes():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 1)
    features = np.random.default_rng(0).normal(size=(len(labels), 3))
    k = select_subset(labels, 0.5, "kcenter", 0, features)
    r = select_subset(labels, 0.5, "random", 0, features)
    for rows in (k, r):
        assert list(np.bincount(labels[rows])) == [5, 2, 1] and len(set(rows)) == len(rows)
    assert list(r) == list(select_subset(labels, 0.5, "random", 0))  # same seed, same subset
    assert coreset.subset_total(labels, 0.5) == 8
    with pytest.raises(ValueError, match="unknown selection"):
        select_subset(labels, 0.5, "best", 0)


def test_subset_recipe_keeps_the_number_of_steps():
    cfg = TrainConfig(epochs=20, batch_size=64)
    assert coreset.subset_recipe(cfg, 4000, 200).epochs == 20 * 63 // 4  # 63 batches -> 4 batches an epoch
    assert coreset.subset_recipe(cfg, 4000, 4000).epochs == 20


def test_subset_models_train_both_and_leave_the_teacher(data, teacher, cache):
    before = snapshot(teacher)
    found = subset_models(TEACHER, teacher, data, 0.05, cache_dir=cache)
    assert set(found) == {"kcenter", "random"}
    assert_unchanged(teacher, before)
    assert cache_path(SubsetConfig(TEACHER, TEACHER, 0.05, "kcenter"), "subset", cache).exists()
    assert subset_models(TEACHER, teacher, data, 0.05, cache_dir=cache)["random"].from_cache


# ---------------------------------------------------------------- the comparison
def test_compare_rows_and_maps(data, teacher, cache):
    result = distill(STUDENT, teacher, data, cache_dir=cache)
    students = {"distilled": ("distilled", result.distilled), "label_only": ("labels", result.label_only)}
    before = snapshot(result.distilled)
    probe, shown = np.arange(0, 40, 2), np.array([0, 7])
    c = compare(teacher, students, data, "saliency", probe, shown, CompressionConfig(prune_amount=0.5))
    assert_unchanged(result.distilled, before)
    rows = c.table.set_index("model")
    assert list(rows.index) == ["teacher", "distilled", "label_only", "compressed"]
    assert rows.loc["teacher", "agreement"] == 1.0 and rows.loc["teacher", "map_spearman"] == pytest.approx(1.0)
    assert rows.loc["distilled", "size_bytes"] == 4 * rows.loc["distilled", "parameters"]
    assert rows.loc["compressed", "size_bytes"] < rows.loc["distilled", "size_bytes"]
    assert c.maps["teacher"].shape == (2, 8, 8) and len(c.spearman["distilled"]) == 2
    shown_text = display_table(c.table).to_string()
    assert "nan" not in shown_text.lower() and "–" in shown_text
    assert "may be noise" in verdict(c.table, "label_only", "distilled", len(data.y_test))


def test_methods_for_all_drops_grad_cam_without_convolutions(data):
    assert "grad_cam" in methods_for_all(["lenet5"], data)
    assert "grad_cam" not in methods_for_all(["lenet5", "mlp32"], data)


# ---------------------------------------------------------------- figures
def _table(accuracies):
    rows = []
    for name, acc in accuracies.items():
        rows.append({"model": name, "label": f"{name} long label", "accuracy": acc, "accuracy_low": acc - 0.01,
                     "accuracy_high": acc + 0.01, "parameters": 1, "size_bytes": 4.0, "agreement": 1.0,
                     "map_spearman": 1.0, "map_spearman_std": 0.0})
    return pd.DataFrame(rows)


def test_accuracy_figure_spans_the_intervals_and_names_guessing():
    from core.figures.distillation import accuracy_intervals
    fig = accuracy_intervals(_table({"teacher": 0.98, "distilled": 0.94, "label_only": 0.93}), 0.1,
                             {"distilled": "distilled"})
    dots = fig.data[0]
    assert list(dots.y) == ["label_only long label", "distilled", "teacher long label"]  # teacher on top
    assert list(dots.text) == ["93.0 %", "94.0 %", "98.0 %"]
    assert fig.layout.xaxis.range[0] <= 92.0 and len(fig.data) == 1  # guessing is far off this axis ...
    assert "Guessing would score 10 %" in fig.layout.meta["caption"]  # ... so the caption names it
    low = accuracy_intervals(_table({"teacher": 0.3, "distilled": 0.2, "label_only": 0.12}), 0.1)
    assert len(low.data) == 2 and list(low.data[1].x) == [10.0, 10.0]


def test_maps_row_puts_three_maps_on_one_scale():
    from core.figures.distillation import maps_row
    maps = [("a", torch.ones(4, 4)), ("b", 2 * torch.ones(4, 4)), ("c", torch.zeros(4, 4))]
    fig = maps_row(torch.zeros(1, 4, 4), maps)
    assert [t.coloraxis for t in fig.data[1:]] == ["coloraxis"] * 3
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 2.0)
    signed = maps_row(torch.zeros(1, 4, 4), [("a", -torch.ones(4, 4)), *maps[1:]])
    assert (signed.layout.coloraxis.cmin, signed.layout.coloraxis.cmax) == (-2.0, 2.0)
    with pytest.raises(ValueError, match="three maps"):
        maps_row(torch.zeros(1, 4, 4), maps[:2])


def test_lesson_figures_of_a_hand_made_table():
    from core.distillation import lesson
    table = _table({"teacher": 0.98, "distilled": 0.95, "label_only": 0.93, "compressed": 0.9})
    table.loc[table["model"] == "teacher", "size_bytes"] = 16.0
    found = lesson.knowledge_figures(table, 4.0, 0.9)
    assert set(found) == set(lesson.KNOWLEDGE)
    assert (found["student_accuracy"], found["label_only_accuracy"], found["student_change"]) == \
        ("95.0 %", "93.0 %", "+2.0 points")
    assert found["student_noise"] == "within the test set's noise"  # 94-96 % and 92-94 % touch
    assert (found["student_ratio"], found["temperature"], found["alpha"]) == ("4.0×", "4", "0.9")
    assert lesson.needs({"student_maps", "accuracy"}) == {"knowledge"}
    assert lesson.needs({"kcenter_accuracy"}) == {"data"} and lesson.needs({"accuracy"}) == set()
