"""The comparison in words: a short plain-language summary of original vs compressed, from templates.

`summarize` turns a CompressionReport, its Diagnosis and (optionally) how the explanations moved
into 3-5 short sentences for a class: what changed overall (accuracy with its 95 % Wilson interval,
agreement), which class and which confusion paid, whether the maps moved (on the stroke or on the
background), whether confidence is still honest (ECE), and what it saves (size). No language model:
every number is formatted from the inputs, the way the Overview's cards format it, and the words
never claim more than the numbers (a change inside the interval is "within the test set's noise").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.explain.stroke import ExplanationShift
from core.figures import format_bytes, format_percent, format_ratio
from core.metrics import CompressionReport
from core.stats import accuracy_interval, format_interval
from core.studies.diagnosis import ECE_BINS, Diagnosis

MOVE = 0.05            # a stroke share that changes by 5 points or more "moved"
SAME_RANKING = 0.9     # a rank correlation at least this high: the maps "barely moved" (if the share did not)
HONEST = 0.02          # an ECE up by less than 2 points: confidence "still honest"
# What the bright (ink) pixels of each data set's images are, in words.
STROKE_WORDS = {"mnist5k": "the digit's stroke", "mnist": "the digit's stroke", "digits": "the digit's stroke",
                "fashion_mnist": "the garment"}


def stroke_words(dataset: str) -> str:
    """What the bright pixels of `dataset`'s images are: "the digit's stroke", else "the bright pixels"."""
    return STROKE_WORDS.get(dataset, "the bright pixels")


@dataclass(frozen=True)
class Summary:
    """The sentences, in order (overall, classes, explanations, confidence, cost); `text` joins them.

    note: the small print to show under them (what the map and calibration figures are).
    """

    sentences: tuple[str, ...]
    note: str = ""

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def percent(fraction: float) -> str:
    """An accuracy as the Overview's cards write it: 96.4 %."""
    return f"{fraction * 100:.1f} %"


def signed_points(change: float) -> str:
    """A change of a fraction in points, with a true minus sign: −2.3 points."""
    text = f"{change * 100:+.1f}".replace("-", "\u2212")
    return f"{text} points"


def summarize(report: CompressionReport, diagnosis: Diagnosis, shift: ExplanationShift | None = None,
              stroke: str = "the digit's stroke") -> Summary:
    """3-5 sentences on `report` (original vs compressed), `diagnosis` and `shift`; nothing is modified.

    stroke: what the ink pixels are called ("the digit's stroke"; "the bright pixels" for photos).
    shift None leaves the sentence on explanations out.
    """
    sentences = [overall(report), classes(report, diagnosis)]
    if shift is not None:
        sentences.append(explanations(shift, stroke))
    sentences += [confidence(diagnosis), cost(report)]
    return Summary(tuple(s for s in sentences if s), note(shift))


def overall(report: CompressionReport) -> str:
    """Accuracy before and after, and whether the change is inside the compressed model's 95 % interval."""
    n = len(report.original.labels)
    before, after = report.original.accuracy, report.compressed.accuracy
    if report.agreement == 1.0:
        return (f"At this setting the compressed model gives the original's answer on all {n:,} test images "
                f"(accuracy {percent(after)}).")
    low, high = accuracy_interval(after, n)
    noise = "within" if low <= before <= high else "beyond"
    return (f"Accuracy went from {percent(before)} to {percent(after)} ({signed_points(after - before)}), "
            f"{noise} the test set's noise (95 % interval {format_interval(low, high)}); the models agree on "
            f"{format_percent(report.agreement)} of the {n:,} test images.")


def classes(report: CompressionReport, diagnosis: Diagnosis) -> str:
    """The answers that changed, the class that lost most and the confusion that grew most ("" if none changed)."""
    if report.agreement == 1.0:
        return ""
    wrong, right = diagnosis.counts["newly_wrong"], diagnosis.counts["newly_right"]
    changed = f"Compression turned {wrong:,} right {_answers(wrong)} wrong and {right:,} wrong {_ones(right)} right"
    count = report.original.per_class_count
    drop = np.where(count > 0, report.compressed.per_class_accuracy - report.original.per_class_accuracy, np.inf)
    worst = int(np.argmin(drop))
    if drop[worst] >= 0:
        return f"{changed}; no class lost accuracy."
    paid = (f"class {diagnosis.classes[worst]} paid most ({percent(report.original.per_class_accuracy[worst])} → "
            f"{percent(report.compressed.per_class_accuracy[worst])})")
    if diagnosis.pairs:
        pair = diagnosis.pairs[0]
        paid += (f", and {pair.change:,} more {_images(pair.change)} of {diagnosis.classes[pair.true]} "
                 f"{'is' if pair.change == 1 else 'are'} now read as {diagnosis.classes[pair.predicted]}")
    return f"{changed}; {paid}."


def explanations(shift: ExplanationShift, stroke: str = "the digit's stroke") -> str:
    """Whether the maps moved: their share of weight on the stroke before and after, and their rank correlation."""
    if shift.empty_compressed == shift.probes:
        return (f"The compressed model's {shift.method} maps are zero on all {shift.probes} test images tried: "
                "it no longer responds to its input.")
    change = shift.stroke_compressed - shift.stroke_original
    now, before = format_percent(shift.stroke_compressed), format_percent(shift.stroke_original)
    even, rank = format_percent(shift.stroke_chance), f"rank correlation {shift.rank_correlation:.2f}"
    if change <= -MOVE or change >= MOVE:
        where = f"off {stroke}" if change < 0 else f"onto {stroke}"
        return (f"The explanations moved {where}: it holds {now} of the {shift.method} maps' weight, {before} "
                f"before ({even} if spread evenly; {rank}).")
    if shift.rank_correlation >= SAME_RANKING:
        return (f"The explanations barely moved ({rank}): {stroke} holds {now} of the {shift.method} maps' weight, "
                f"{before} before ({even} if spread evenly).")
    return (f"The explanations reshuffled ({rank}) but stay on {stroke}: it holds {now} of the {shift.method} "
            f"maps' weight, {before} before ({even} if spread evenly).")


def confidence(diagnosis: Diagnosis) -> str:
    """Whether confidence is still honest: the expected calibration error before and after, and its direction."""
    before, after = diagnosis.calibration_original, diagnosis.calibration_compressed
    errors = f"calibration error {percent(after.ece)}, before {percent(before.ece)}"
    if after.ece < before.ece + HONEST:
        return f"Confidence is still honest ({errors})."
    gap = after.mean_confidence - after.accuracy_overall
    if abs(gap) < HONEST:
        return (f"Confidence is less honest ({errors}): on average it is right as often as it says, but not "
                "within each level of confidence.")
    return (f"Confidence is less honest ({errors}): the compressed model is {'over' if gap > 0 else 'under'}-"
            f"confident, saying {percent(after.mean_confidence)} on average, right {percent(after.accuracy_overall)} "
            "of the time.")


def cost(report: CompressionReport) -> str:
    """What compression saves: stored size before and after, and the ratio."""
    before, after = format_bytes(report.size_original_bytes), format_bytes(report.size_compressed_bytes)
    if report.size_compressed_bits >= report.size_original_bits:
        return f"It saves no space: {after}, as stored, against {before} for the original."
    if report.size_compressed_bits == 0:
        return f"The saving: nothing is left to store (0 B instead of {before})."
    return f"The saving: {after} instead of {before}, {format_ratio(report.compression_ratio)} smaller."


def _answers(count: int) -> str:
    return "answer" if count == 1 else "answers"


def _ones(count: int) -> str:
    return "one" if count == 1 else "ones"


def _images(count: int) -> str:
    return "image" if abs(count) == 1 else "images"


def note(shift: ExplanationShift | None) -> str:
    """The small print under the summary: what the explanation and confidence figures are."""
    maps = ("" if shift is None else
            f"Explanations: {shift.method} maps of {shift.probes} fixed test images, both explaining the original's "
            "answer; rank correlation 1 = the same order of pixels. ")
    return (f"{maps}Calibration error: how far the confidence is from the share of right answers, over {ECE_BINS} "
            "bands of confidence (0 % = honest). Interval: 95 % Wilson interval of the compressed model's accuracy.")
