"""Diagnosis by error type (core/studies/diagnosis.py) and the stroke share of maps (core/explain/stroke.py):
hand-written predictions against scikit-learn, hand-computed calibration, degenerate cases, inputs unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from core.explain.agreement import saliency_agreement
from core.explain.stroke import explanation_shift, ink_mask, stroke_share
from core.metrics import Evaluation
from core.studies.diagnosis import (ECE_BINS, GROUPS, ConfusionPair, calibration, confusion, diagnose, grown_pairs,
                                    sort_images)

CLASSES = ("0", "1", "2", "3")


def evaluation(labels, predictions, k: int = 4, confidence: float = 0.7) -> Evaluation:
    """An Evaluation with the given answers: the predicted class gets `confidence`, the rest share what is left."""
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    probs = np.full((len(labels), k), (1 - confidence) / (k - 1), dtype=np.float32)
    probs[np.arange(len(labels)), predictions] = confidence
    right = predictions == labels
    count = np.bincount(labels, minlength=k)
    hits = np.bincount(labels, weights=right, minlength=k)
    per_class = np.divide(hits, count, out=np.zeros(k), where=count > 0)
    return Evaluation(predictions, probs, labels, float(right.mean()), per_class, count)


LABELS = [0, 0, 1, 1, 2, 2, 3, 3, 3, 1]
BEFORE = [0, 0, 1, 2, 2, 2, 3, 1, 0, 3]   # wrong: 3 (1->2), 7 (3->1), 8 (3->0), 9 (1->3)
AFTER = [0, 3, 1, 2, 3, 2, 3, 1, 2, 1]    # wrong: 1 (0->3), 3 (1->2), 4 (2->3), 7 (3->1), 8 (3->2)


def test_confusion_and_its_change_equal_scikit_learns():
    d = diagnose(evaluation(LABELS, BEFORE), evaluation(LABELS, AFTER), CLASSES)
    before = confusion_matrix(LABELS, BEFORE, labels=range(4))
    after = confusion_matrix(LABELS, AFTER, labels=range(4))
    np.testing.assert_array_equal(d.confusion_original, before)
    np.testing.assert_array_equal(d.confusion_compressed, after)
    np.testing.assert_array_equal(d.confusion_change, after - before)
    assert d.confusion_change.sum() == 0  # the same images, only moved between cells


def test_random_predictions_match_scikit_learn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    np.testing.assert_array_equal(confusion(y, p, 7), confusion_matrix(y, p, labels=range(7)))


def test_every_image_is_sorted_into_one_group_by_hand():
    group = sort_images(np.array(LABELS), np.array(BEFORE), np.array(AFTER))
    names = [GROUPS[g] for g in group]
    assert names == ["right_both", "newly_wrong", "right_both", "wrong_same", "newly_wrong", "right_both",
                     "right_both", "wrong_same", "wrong_different", "newly_right"]
    d = diagnose(evaluation(LABELS, BEFORE), evaluation(LABELS, AFTER), CLASSES)
    assert d.counts == {"newly_wrong": 2, "newly_right": 1, "wrong_same": 2, "wrong_different": 1, "right_both": 4}
    np.testing.assert_array_equal(d.members("newly_wrong"), [1, 4])
    assert sum(d.counts.values()) == len(LABELS)


def test_grown_pairs_are_named_in_words_largest_first():
    d = diagnose(evaluation(LABELS, BEFORE), evaluation(LABELS, AFTER), CLASSES)
    # Grown cells: (0 -> 3) +1, (2 -> 3) +1, (3 -> 2) +1; (1 -> 3) and (3 -> 0) shrank.
    assert [(p.true, p.predicted, p.change) for p in d.pairs] == [(0, 3, 1), (2, 3, 1), (3, 2, 1)]
    assert d.pairs[0].words(CLASSES) == "0 now read as 3: +1 image (0 before, 1 now)"
    pair = ConfusionPair(true=4, predicted=9, before=2, after=25)
    assert pair.words(tuple(str(i) for i in range(10))) == "4 now read as 9: +23 images (2 before, 25 now)"
    before, after = np.zeros((3, 3), int), np.zeros((3, 3), int)
    after[1, 2], after[2, 0], after[0, 1] = 5, 9, 2
    assert [(p.true, p.predicted) for p in grown_pairs(before, after, top=2)] == [(2, 0), (1, 2)]


def test_ece_of_a_perfectly_calibrated_toy_is_zero():
    # 10 images at confidence 0.8, 8 right; 5 images at 0.6, 3 right: each bin's accuracy is its confidence.
    labels = np.zeros(15, np.int64)
    probs = np.zeros((15, 2))
    probs[:10] = [0.8, 0.2]
    probs[10:] = [0.6, 0.4]
    probs[[8, 9]] = [0.2, 0.8]
    probs[[13, 14]] = [0.4, 0.6]
    cal = calibration(probs, labels)
    assert cal.ece == pytest.approx(0.0, abs=1e-12)
    assert cal.count.sum() == 15 and len(cal.count) == ECE_BINS and len(cal.edges) == ECE_BINS + 1
    assert cal.count[11] == 10 and cal.count[8] == 5       # 0.8 in (11/15, 12/15], 0.6 in (8/15, 9/15]


def test_ece_against_a_hand_computation():
    # Bin (13/15, 14/15]: 4 images at 0.9, 2 right (gap 0.4); bin (14/15, 1]: 2 images at 0.99, both right (gap 0.01).
    labels = np.array([0, 0, 1, 1, 0, 0])
    probs = np.array([[0.9, 0.1]] * 4 + [[0.99, 0.01]] * 2)
    cal = calibration(probs, labels)
    assert cal.ece == pytest.approx(4 / 6 * 0.4 + 2 / 6 * 0.01)
    assert cal.accuracy[13] == 0.5 and cal.confidence[13] == pytest.approx(0.9)
    assert cal.accuracy[0] == 0.0 and cal.count[0] == 0   # empty bins: 0, never NaN
    assert np.isfinite(cal.accuracy).all() and np.isfinite(cal.confidence).all()
    assert cal.mean_confidence == pytest.approx((4 * 0.9 + 2 * 0.99) / 6)
    assert cal.accuracy_overall == pytest.approx(4 / 6)


def test_a_confidence_on_an_edge_goes_to_the_bin_below():
    cal = calibration(np.array([[2 / 3, 1 / 3]]), np.array([0]))  # 2/3 = 10/15, the upper edge of bin 9
    assert cal.count[9] == 1


def test_degenerate_cases_get_values_and_notes():
    labels = [0, 0, 1, 1]  # classes 2 and 3 have no test image
    d = diagnose(evaluation(labels, labels), evaluation(labels, labels), CLASSES)
    assert d.counts["right_both"] == 4 and d.counts["newly_wrong"] == 0 and len(d.members("newly_wrong")) == 0
    assert d.pairs == ()
    assert any("No test image of class 2, 3" in n for n in d.notes)
    assert any("every test image right" in n for n in d.notes)
    d = diagnose(evaluation(LABELS, BEFORE), evaluation(LABELS, BEFORE), CLASSES)
    assert d.pairs == () and any("No confusion between two classes grew" in n for n in d.notes)


def test_inputs_are_unchanged_and_results_are_read_only():
    a, b = evaluation(LABELS, BEFORE), evaluation(LABELS, AFTER)
    copies = [x.copy() for x in (a.predictions, a.probabilities, b.predictions, b.probabilities, a.labels)]
    d = diagnose(a, b, CLASSES)
    for before, now in zip(copies, (a.predictions, a.probabilities, b.predictions, b.probabilities, a.labels)):
        np.testing.assert_array_equal(before, now)
    with pytest.raises(ValueError):
        d.confusion_change[0, 0] = 1
    with pytest.raises(ValueError, match="different test images"):
        diagnose(a, evaluation([1] * 10, AFTER), CLASSES)


# ---------------------------------------------------------------- where the maps lie: stroke or background
def _digit() -> torch.Tensor:
    x = torch.full((1, 1, 4, 4), -0.5)
    x[0, 0, 1:3, 1] = 2.0   # a two-pixel "stroke"
    x[0, 0, 0, 0] = -0.3    # faint noise: below 30 % of the way from black to white
    return x


def test_ink_is_the_bright_pixels():
    mask = ink_mask(_digit())
    assert mask.sum() == 2 and mask[0, 1, 1] and mask[0, 2, 1] and not mask[0, 0, 0]
    assert ink_mask(torch.zeros(1, 1, 3, 3)).sum() == 0  # a flat image has no ink


def test_stroke_share_by_hand_and_an_empty_map():
    x = _digit().repeat(2, 1, 1, 1)
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 1], maps[0, 3, 3] = 3.0, -1.0   # 3 of 4 units of |mass| on ink
    share, empty = stroke_share(maps, x)
    assert share.tolist() == [0.75, 0.0] and empty.tolist() == [False, True]


def test_explanation_shift_by_hand_and_inputs_unchanged():
    x = _digit().repeat(2, 1, 1, 1)
    original = torch.zeros(2, 4, 4)
    original[:, 1, 1] = 1.0                     # all on the stroke
    compressed = torch.zeros(2, 4, 4)
    compressed[:, 1, 1], compressed[:, 0, 3] = 1.0, 1.0   # half moved to the background
    kept = (x.clone(), original.clone(), compressed.clone())
    shift = explanation_shift(original, compressed, x, "saliency")
    assert shift.stroke_original == 1.0 and shift.stroke_compressed == 0.5
    assert shift.stroke_chance == pytest.approx(2 / 16) and shift.probes == 2
    assert shift.empty_original == shift.empty_compressed == 0
    assert explanation_shift(original, original, x, "saliency").rank_correlation == pytest.approx(1.0)
    for before, now in zip(kept, (x, original, compressed)):
        assert torch.equal(before, now)
    empty = explanation_shift(original, torch.zeros(2, 4, 4), x, "saliency")
    assert empty.stroke_compressed == 0.0 and empty.empty_compressed == 2


# ---------------------------------------------------------------- figures
from core.figures import diagnosis as figures_diagnosis  # noqa: E402
from core.figures import figure_caption  # noqa: E402


def test_confusion_figures_show_the_matrices_and_a_diverging_scale_centred_at_zero():
    d = diagnose(evaluation(LABELS, BEFORE), evaluation(LABELS, AFTER), CLASSES)
    fig = figures_diagnosis.confusion_heatmap(d.confusion_original, CLASSES, "Original model")
    np.testing.assert_array_equal(np.array(fig.data[0].z), d.confusion_original)
    assert fig.data[0].text[1][2] == "1" and figure_caption(fig)
    change = figures_diagnosis.confusion_change_heatmap(d.confusion_change, CLASSES)
    heat = change.data[0]
    np.testing.assert_array_equal(np.array(heat.z), d.confusion_change)
    assert heat.zmid == 0 and heat.zmin == -heat.zmax and heat.zmax == 1
    assert heat.text[0][3] == "+1" and heat.text[1][3] == "\u22121" and heat.text[0][1] == ""
    same = figures_diagnosis.confusion_change_heatmap(np.zeros((4, 4), int), CLASSES)  # nothing changed
    assert same.data[0].zmax == 1 and np.isfinite(np.array(same.data[0].z, float)).all()


def test_reliability_diagram_has_the_diagonal_both_models_and_their_errors():
    a, b = evaluation(LABELS, BEFORE, confidence=0.7), evaluation(LABELS, AFTER, confidence=0.9)
    d = diagnose(a, b, CLASSES)
    fig = figures_diagnosis.reliability_diagram(d.calibration_original, d.calibration_compressed)
    diagonal, original, compressed = fig.data
    assert list(diagonal.x) == [0, 100] and list(diagonal.y) == [0, 100]   # in %, like the points
    assert list(original.x) == pytest.approx([70.0], abs=1e-4) and list(original.y) == [60.0]   # 6 of 10 right
    assert list(compressed.y) == [50.0]
    assert f"{d.calibration_compressed.ece * 100:.1f} %" in compressed.name
    assert "original 10.0 %, compressed 40.0 %" in figure_caption(fig)


def test_gallery_tiles_carry_both_answers_and_sharp_pictures():
    a, b = evaluation(LABELS, BEFORE), evaluation(LABELS, AFTER, confidence=0.55)
    images = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    kept = images.copy()
    tiles = figures_diagnosis.gallery_tiles(images, [1, 4], a, b, CLASSES)
    assert [t.index for t in tiles] == [1, 4]
    assert tiles[0].caption == "**#1** · a 0  \noriginal 0 (70 %)  \ncompressed 3 (55 %)"
    assert tiles[0].picture.shape == (80, 80, 3) and tiles[0].picture.dtype == np.uint8  # 8 px × 10
    assert (tiles[0].picture[:10, :10] == tiles[0].picture[0, 0]).all()                  # one pixel, one block
    assert tiles[0].picture.min() == 0 and tiles[0].picture.max() == 255
    np.testing.assert_array_equal(images, kept)


def test_the_rank_correlation_is_saliency_agreements():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, 6, 6, generator=gen)
    a, b = torch.randn(5, 6, 6, generator=gen), torch.randn(5, 6, 6, generator=gen)
    a[0], b[0] = 0.0, 0.0   # both empty: defined as 1, as saliency_agreement does
    expected = float(saliency_agreement(a, b)["spearman_abs"].double().mean())
    assert explanation_shift(a, b, x, "saliency").rank_correlation == pytest.approx(expected, abs=1e-6)
