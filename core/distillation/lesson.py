"""Lesson figures of the Distillation page: placeholders such as `{student_accuracy}` filled from the same
comparison the page shows for the step's settings (see core.lesson_figures for how placeholders work).

`needs(names)` says which of the page's two comparisons a step's placeholders need ("knowledge",
"data"), so a step quoting only the student's figures never trains the subset models.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from core.figures import format_bytes, format_percent, format_ratio

KNOWLEDGE: dict[str, str] = {
    "temperature": "the temperature T the step sets (4)",
    "alpha": "the weight α of the teacher the step sets (0.9)",
    "teacher_accuracy": "test accuracy of the teacher (the sidebar's model)",
    "student_accuracy": "test accuracy of the distilled student",
    "label_only_accuracy": "test accuracy of the same student trained on the labels alone",
    "student_change": "distilled minus label-only student's accuracy, in points (+1.4 points)",
    "student_noise": "whether that difference is beyond the test set's noise, in words (95 % Wilson intervals)",
    "student_agreement": "share of test images on which the distilled student answers as the teacher does",
    "label_only_agreement": "the same for the label-only student",
    "student_maps": "mean rank correlation of the distilled student's maps with the teacher's (0.62)",
    "label_only_maps": "the same for the label-only student",
    "teacher_size": "stored size of the teacher",
    "student_size": "stored size of the student",
    "student_ratio": "teacher size ÷ student size (4.2×)",
    "compressed_student_accuracy": "accuracy of the distilled student compressed with the step's sidebar setting",
    "compressed_student_size": "stored size of that compressed student",
}
DATA: dict[str, str] = {
    "subset_images": "training images the data-distillation subset keeps (200)",
    "full_accuracy": "test accuracy of the model trained on all the training images",
    "kcenter_accuracy": "test accuracy of the same model trained on the k-center subset",
    "random_accuracy": "test accuracy of the same model trained on a random subset of the same size",
    "kcenter_change": "k-center minus random subset's accuracy, in points",
    "kcenter_noise": "whether that difference is beyond the test set's noise, in words",
}
PLACEHOLDERS: dict[str, str] = {**KNOWLEDGE, **DATA}


def needs(names: Iterable[str]) -> set[str]:
    """Which comparisons ("knowledge", "data") the placeholder `names` need."""
    names = set(names)
    return {kind for kind, group in (("knowledge", KNOWLEDGE), ("data", DATA)) if names & set(group)}


def _accuracy(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def _points(change: float) -> str:
    return f"{100 * change:+.1f} points".replace("-", "\u2212")


def _noise(a: pd.Series, b: pd.Series) -> str:
    overlap = max(a["accuracy_low"], b["accuracy_low"]) <= min(a["accuracy_high"], b["accuracy_high"])
    return "within the test set's noise" if overlap else "beyond the test set's noise"


def knowledge_figures(table: pd.DataFrame, temperature: float, alpha: float) -> dict[str, str]:
    """The KNOWLEDGE placeholders from core.distillation.compare's table (rows teacher, distilled, label_only,
    compressed)."""
    rows = table.set_index("model")
    t, s, plain, small = (rows.loc[name] for name in ("teacher", "distilled", "label_only", "compressed"))
    return {
        "temperature": f"{temperature:g}", "alpha": f"{alpha:g}",
        "teacher_accuracy": _accuracy(t["accuracy"]), "student_accuracy": _accuracy(s["accuracy"]),
        "label_only_accuracy": _accuracy(plain["accuracy"]),
        "student_change": _points(s["accuracy"] - plain["accuracy"]), "student_noise": _noise(s, plain),
        "student_agreement": format_percent(s["agreement"]), "label_only_agreement": format_percent(plain["agreement"]),
        "student_maps": f"{s['map_spearman']:.2f}", "label_only_maps": f"{plain['map_spearman']:.2f}",
        "teacher_size": format_bytes(t["size_bytes"]), "student_size": format_bytes(s["size_bytes"]),
        "student_ratio": format_ratio(t["size_bytes"] / s["size_bytes"]),
        "compressed_student_accuracy": _accuracy(small["accuracy"]),
        "compressed_student_size": format_bytes(small["size_bytes"]),
    }


def data_figures(table: pd.DataFrame, kept: int) -> dict[str, str]:
    """The DATA placeholders from the table of the all-data, k-center and random-subset models."""
    rows = table.set_index("model")
    full, k, r = (rows.loc[name] for name in ("teacher", "kcenter", "random"))
    return {"subset_images": f"{kept:,}", "full_accuracy": _accuracy(full["accuracy"]),
            "kcenter_accuracy": _accuracy(k["accuracy"]), "random_accuracy": _accuracy(r["accuracy"]),
            "kcenter_change": _points(k["accuracy"] - r["accuracy"]), "kcenter_noise": _noise(k, r)}


def unavailable(names: Mapping[str, str] = PLACEHOLDERS) -> dict[str, str]:
    """Every placeholder as "(not available)" (a data set that cannot be loaded)."""
    return dict.fromkeys(names, "(not available)")
