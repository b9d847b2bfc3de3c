"""Diagnosis by error type: which mistakes compression added, on which images, and how honest confidence stays.

- `confusion`: the confusion matrix (rows: true class, columns: predicted class) of one evaluation.
- `diagnose`: both models' matrices and their difference, the class pairs whose confusion grew most
  (in words: "4 now read as 9: +23 images"), every test image sorted into one of `GROUPS`, and the
  calibration of both models (`calibration`: reliability diagram and expected calibration error).

Everything works on `core.metrics.Evaluation`s (the predictions and probabilities a report already
holds), so no model is run again. Inputs are only read; returned arrays are read-only. Degenerate
cases (a class with no test images, no mistake at all, an empty group) get defined values and a note.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.metrics import Evaluation

ECE_BINS = 15  # Guo et al. 2017 (REFERENCE §11)
# Every test image falls into exactly one group, by whether each model answers right.
GROUPS = ("newly_wrong", "newly_right", "wrong_same", "wrong_different", "right_both")
GROUP_LABELS = {
    "newly_wrong": "newly wrong (right before, wrong after compression)",
    "newly_right": "newly right (wrong before, right after compression)",
    "wrong_same": "wrong in both, the same wrong answer",
    "wrong_different": "wrong in both, different wrong answers",
    "right_both": "right in both",
}
# Short names, for buttons and cards.
GROUP_NAMES = {"newly_wrong": "Newly wrong", "newly_right": "Newly right", "wrong_same": "Wrong, same answer",
               "wrong_different": "Wrong, other answers", "right_both": "Right in both"}
TOP_PAIRS = 3


@dataclass(frozen=True, eq=False)
class Calibration:
    """Reliability diagram data and expected calibration error of one model.

    Bins are (edges[i], edges[i+1]] of the confidence (the top class's probability), ECE_BINS of
    them. count (B,) int64; accuracy and confidence (B,) float64 are the bin's share of right
    answers and mean confidence, 0.0 in an empty bin (check count; never NaN). ece = Σ |B|/n ·
    |accuracy − confidence|; mean_confidence and accuracy_overall over all images.
    """

    edges: np.ndarray
    count: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray
    ece: float
    mean_confidence: float
    accuracy_overall: float


@dataclass(frozen=True)
class ConfusionPair:
    """One off-diagonal cell that changed: images of class `true` answered `predicted`, before and after."""

    true: int
    predicted: int
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before

    def words(self, classes: tuple[str, ...]) -> str:
        """"4 now read as 9: +23 images (2 before, 25 now)"."""
        noun = "image" if abs(self.change) == 1 else "images"
        return (f"{classes[self.true]} now read as {classes[self.predicted]}: {self.change:+d} {noun} "
                f"({self.before} before, {self.after} now)")


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """Original vs compressed by error type, on one test set (arrays read-only).

    confusion_* (K, K) int64, rows true class, columns predicted; change = compressed − original.
    pairs: up to TOP_PAIRS off-diagonal cells with the largest growth (> 0), largest first.
    group (N,) holds each image's index into GROUPS; counts maps each group name to its size.
    notes: sentences about degenerate cases, for the page to show.
    """

    classes: tuple[str, ...]
    confusion_original: np.ndarray
    confusion_compressed: np.ndarray
    confusion_change: np.ndarray
    pairs: tuple[ConfusionPair, ...]
    group: np.ndarray
    counts: dict[str, int]
    calibration_original: Calibration
    calibration_compressed: Calibration
    notes: tuple[str, ...]

    def members(self, name: str) -> np.ndarray:
        """Test-image indices in group `name` (ascending)."""
        return np.flatnonzero(self.group == GROUPS.index(name))


def confusion(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows true class, columns predicted (scikit-learn's confusion_matrix convention).

    One bincount over true * K + predicted: the same numbers as sklearn's, without its input checks
    on the slider path (tests compare the two).
    """
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def calibration(probabilities: np.ndarray, labels: np.ndarray, predictions: np.ndarray | None = None,
                bins: int = ECE_BINS) -> Calibration:
    """Reliability diagram and ECE of softmax `probabilities` (N, K) against `labels` (N,); inputs only read.

    Confidence is the top probability, right means the predicted class (`predictions`, default the
    probabilities' argmax; pass the evaluation's own, so ties count as its accuracy does) is the
    label (Guo et al. 2017). Written
    here because scikit-learn's calibration_curve bins one class's probability, not the top one, and
    drops empty bins.
    """
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.int64)
    if len(labels) == 0:
        raise ValueError("calibration needs at least one image")
    confidence = probabilities.max(axis=1)
    predicted = probabilities.argmax(axis=1) if predictions is None else np.asarray(predictions, np.int64)
    right = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left" on the inner edges: a confidence equal to an edge belongs to the bin below, (lo, hi].
    which = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(which, minlength=bins).astype(np.int64)
    hits = np.bincount(which, weights=right, minlength=bins)
    sure = np.bincount(which, weights=confidence, minlength=bins)
    accuracy = np.divide(hits, count, out=np.zeros(bins), where=count > 0)
    mean_conf = np.divide(sure, count, out=np.zeros(bins), where=count > 0)
    ece = float(np.sum(count / len(labels) * np.abs(accuracy - mean_conf)))
    return Calibration(_frozen(edges), _frozen(count), _frozen(accuracy), _frozen(mean_conf), ece,
                       float(confidence.mean()), float(right.mean()))


def sort_images(labels: np.ndarray, original: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    """(N,) int64 index into GROUPS for every image, from the labels and both models' predictions."""
    labels, original, compressed = (np.asarray(a, np.int64) for a in (labels, original, compressed))
    was, now = original == labels, compressed == labels
    group = np.full(len(labels), GROUPS.index("wrong_different"), dtype=np.int64)
    group[was & now] = GROUPS.index("right_both")
    group[was & ~now] = GROUPS.index("newly_wrong")
    group[~was & now] = GROUPS.index("newly_right")
    group[~was & ~now & (original == compressed)] = GROUPS.index("wrong_same")
    return group


def grown_pairs(before: np.ndarray, after: np.ndarray, top: int = TOP_PAIRS) -> tuple[ConfusionPair, ...]:
    """The off-diagonal cells whose count grew most (only growth > 0), largest first; ties by class order."""
    change = after - before
    off = ~np.eye(len(change), dtype=bool)
    cells = [(int(-change[t, p]), int(t), int(p)) for t, p in zip(*np.nonzero(off & (change > 0)))]
    return tuple(ConfusionPair(t, p, int(before[t, p]), int(after[t, p])) for _, t, p in sorted(cells)[:top])


def diagnose(original: Evaluation, compressed: Evaluation, classes: tuple[str, ...]) -> Diagnosis:
    """Diagnosis of two evaluations on the same test set (same labels); neither is modified."""
    if not np.array_equal(original.labels, compressed.labels):
        raise ValueError("the two evaluations are on different test images")
    k = original.num_classes
    if len(classes) != k or compressed.num_classes != k:
        raise ValueError(f"need {k} class names and two models with {k} outputs")
    labels = original.labels
    before = confusion(labels, original.predictions, k)
    after = confusion(labels, compressed.predictions, k)
    group = sort_images(labels, original.predictions, compressed.predictions)
    counts = {name: int(np.sum(group == i)) for i, name in enumerate(GROUPS)}
    pairs = grown_pairs(before, after)
    calibrated = [calibration(e.probabilities, labels, e.predictions) for e in (original, compressed)]
    return Diagnosis(tuple(classes), _frozen(before), _frozen(after), _frozen(after - before), pairs, _frozen(group),
                     counts, *calibrated, _notes(classes, before, counts, pairs))


def _notes(classes: tuple[str, ...], before: np.ndarray, counts: dict[str, int],
           pairs: tuple[ConfusionPair, ...]) -> tuple[str, ...]:
    notes = []
    empty = [classes[i] for i in np.flatnonzero(before.sum(axis=1) == 0)]
    if empty:
        notes.append(f"No test image of class {', '.join(empty)}: its row of the matrices is empty (all 0).")
    if counts["right_both"] == sum(counts.values()):
        notes.append("Both models answer every test image right: there is no confusion to compare.")
    elif not pairs:
        notes.append("No confusion between two classes grew: compression added no new kind of mistake.")
    return tuple(notes)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)  # a private copy, then read-only: results are cached and shared
    array.flags.writeable = False
    return array
