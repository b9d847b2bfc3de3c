"""The comparison in words (core/summary.py): every number in the text comes from its inputs, the words
follow the numbers (within noise or beyond, moved or not, honest or not), degenerate settings read well."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from core.compression import CompressionConfig
from core.explain.stroke import ExplanationShift
from core.metrics import CompressionReport, Evaluation
from core.stats import accuracy_interval
from core.studies.diagnosis import diagnose
from core.summary import summarize

CLASSES = tuple(str(i) for i in range(10))
N = 1000
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def evaluation(labels: np.ndarray, predictions: np.ndarray, confidence: np.ndarray) -> Evaluation:
    probs = np.repeat(((1 - confidence) / 9)[:, None], 10, axis=1).astype(np.float32)
    probs[np.arange(len(labels)), predictions] = confidence
    right = predictions == labels
    count = np.bincount(labels, minlength=10)
    per_class = np.bincount(labels, weights=right, minlength=10) / count
    return Evaluation(predictions, probs, labels, float(right.mean()), per_class, count)


def report(original: Evaluation, compressed: Evaluation, size_bits: int = 40_000,
           original_bits: int = 400_000) -> CompressionReport:
    return CompressionReport(
        config=CompressionConfig(prune_amount=0.9), original=original, compressed=compressed,
        agreement=float(np.mean(original.predictions == compressed.predictions)), original_layers=(),
        compressed_layers=(), total_params=original_bits // 32, prunable_params=original_bits // 32, sparsity=0.9,
        size_original_bits=original_bits, size_compressed_bits=size_bits,
        compression_ratio=original_bits / size_bits if size_bits else float("inf"),
        dense_macs=1000, remaining_macs=100, theoretical_speedup=10.0)


@pytest.fixture
def case():
    """1,000 images; the original misses 20; compressed, 23 fours are read as 9 and 5 old mistakes are fixed."""
    labels = np.arange(N) % 10
    before = labels.copy()
    before[:20] = (labels[:20] + 1) % 10
    after = before.copy()
    fours = np.flatnonzero((labels == 4) & (before == labels))[:23]
    after[fours] = 9
    after[:5] = labels[:5]
    original = evaluation(labels, before, np.full(N, 0.98))       # calibrated: 98 % sure, 98 % right
    compressed = evaluation(labels, after, np.full(N, 0.99))      # 99 % sure, 96.2 % right: over-confident
    shift = ExplanationShift("saliency", 64, 0.62, stroke_original=0.71, stroke_compressed=0.55, stroke_chance=0.19,
                             empty_original=0, empty_compressed=0)
    return original, compressed, shift


def test_every_number_comes_from_the_inputs(case):
    original, compressed, shift = case
    rep = report(original, compressed)
    diag = diagnose(original, compressed, CLASSES)
    text = summarize(rep, diag, shift).text
    low, high = accuracy_interval(compressed.accuracy, N)
    pair = diag.pairs[0]
    assert (pair.true, pair.predicted, pair.change) == (4, 9, 23)
    expected = [
        f"{original.accuracy * 100:.1f}", f"{compressed.accuracy * 100:.1f}",                  # 98.0 -> 96.2
        f"{abs(compressed.accuracy - original.accuracy) * 100:.1f}",                           # 1.8 points
        "95", f"{low * 100:.1f}", f"{high * 100:.1f}",                                         # 95 % interval
        f"{rep.agreement * 100:.0f}", "1,000",                                                  # agree on 97 %
        "23", "5",                                                                              # newly wrong / right
        "4", f"{original.per_class_accuracy[4] * 100:.1f}", f"{compressed.per_class_accuracy[4] * 100:.1f}",
        "23", "4", "9",                                                                         # 23 more 4s read as 9
        "55", "71", "19", "0.62",                                                               # the maps
        f"{diag.calibration_compressed.ece * 100:.1f}", f"{diag.calibration_original.ece * 100:.1f}",
        f"{diag.calibration_compressed.mean_confidence * 100:.1f}", f"{compressed.accuracy * 100:.1f}",
        "5.0", "50.0", "10.0",                                                                  # 5.0 kB, 50.0 kB, 10×
    ]
    assert NUMBER.findall(text) == expected, text
    assert (diag.counts["newly_wrong"], diag.counts["newly_right"]) == (23, 5)
    assert "beyond the test set's noise" in text and "The explanations moved off the digit's stroke" in text
    assert "23 more images of 4 are now read as 9" in text
    assert "over-confident" in text and "class 4 paid most" in text
    assert 3 <= len(summarize(rep, diag, shift).sentences) <= 5
    assert NUMBER.findall(summarize(rep, diag, shift).note) == ["64", "1", "15", "0", "95"]


def test_a_change_inside_the_interval_is_within_noise(case):
    original, _, shift = case
    labels = original.labels
    after = original.predictions.copy()
    after[np.flatnonzero(after == labels)[:3]] = (labels[np.flatnonzero(after == labels)[:3]] + 2) % 10
    compressed = evaluation(labels, after, np.full(N, 0.97))
    text = summarize(report(original, compressed), diagnose(original, compressed, CLASSES), shift).text
    assert "within the test set's noise" in text and "beyond" not in text


def test_the_text_follows_the_setting(case):
    original, compressed, shift = case
    diag = diagnose(original, compressed, CLASSES)
    one = summarize(report(original, compressed), diag, shift).text
    other = summarize(report(original, compressed, size_bits=100_000), diag,
                      replace(shift, stroke_compressed=0.70, rank_correlation=0.95)).text
    assert one != other
    assert "4.0×" in other and "The explanations barely moved" in other


def test_an_uncompressed_model_reads_as_unchanged(case):
    original, _, shift = case
    same = replace(shift, stroke_compressed=shift.stroke_original, rank_correlation=1.0)
    summary = summarize(report(original, original, size_bits=400_000), diagnose(original, original, CLASSES), same)
    text = summary.text
    assert text.startswith("At this setting the compressed model gives the original's answer on all 1,000 test images")
    assert "It saves no space" in text and "Confidence is still honest" in text and "barely moved" in text
    assert 3 <= len(summary.sentences) <= 5 and "nan" not in text.lower()


def test_degenerate_settings_have_words_not_nan(case):
    original, compressed, shift = case
    dead = replace(shift, empty_compressed=64, stroke_compressed=0.0)
    text = summarize(report(original, compressed, size_bits=0), diagnose(original, compressed, CLASSES), dead).text
    assert "zero on all 64 test images" in text and "nothing is left to store (0 B" in text
    assert "nan" not in text.lower() and "inf" not in text.lower()
    # No class lost, no explanation measured.
    labels = original.labels
    fixed = evaluation(labels, np.where(np.arange(N) < 5, labels, original.predictions), np.full(N, 0.97))
    text = summarize(report(original, fixed), diagnose(original, fixed, CLASSES)).text
    assert "no class lost accuracy" in text and "maps" not in text


def test_inputs_are_unchanged(case):
    original, compressed, shift = case
    kept = [a.copy() for a in (original.predictions, original.probabilities, compressed.predictions)]
    rep, diag = report(original, compressed), diagnose(original, compressed, CLASSES)
    summarize(rep, diag, shift)
    for before, now in zip(kept, (original.predictions, original.probabilities, compressed.predictions)):
        np.testing.assert_array_equal(before, now)


def test_the_html_report_carries_the_summary(case):
    from core.export import report_html

    original, compressed, shift = case
    rep = report(original, compressed)
    summary = summarize(rep, diagnose(original, compressed, CLASSES), shift)
    page = report_html("Report", {"prune": "90"}, rep, [], summary=summary.sentences)
    assert "<h2>In words</h2>" in page and "23 more images of 4 are now read as 9" in page
    assert page.index("In words") < page.index("<h2>Settings</h2>")
    assert "In words" not in report_html("Report", {"prune": "90"}, rep, [])


def test_a_class_without_test_images_is_left_out_of_who_paid(case):
    original, compressed, shift = case
    count = original.per_class_count.copy()
    count[4] = 0  # as if no 4 were in the test set: its accuracies are 0.0 (core.metrics' convention)
    per_class = [e.per_class_accuracy.copy() for e in (original, compressed)]
    per_class[1][4] = per_class[0][4] = 0.0
    hollow = [Evaluation(e.predictions, e.probabilities, e.labels, e.accuracy, p, count)
              for e, p in zip((original, compressed), per_class)]
    text = summarize(report(*hollow), diagnose(original, compressed, CLASSES), shift).text
    assert "class 4 paid most" not in text and "no class lost accuracy" in text and "nan" not in text.lower()


def test_the_stroke_is_named_for_the_data_set():
    from core.summary import stroke_words

    assert stroke_words("mnist5k") == stroke_words("digits") == "the digit's stroke"
    assert stroke_words("cifar10") == "the bright pixels"
