"""Figures in lesson text: placeholders such as `{accuracy}` filled from the app's own report.

A lesson never types a measured number: its text names a figure in braces and the app fills it in
when the step is shown, from the `CompressionReport` of the step's own settings (the lesson's
`[settings]` and the step's `[steps.set]`, the rest at their defaults), formatted as the Overview's
metric cards show it. `{step2.accuracy}` takes the figure from step 2's settings instead, for
comparisons ("compare {accuracy} with {step2.accuracy}").

Braces around one word (letters, digits, `_`), optionally after `stepN.`, are placeholders;
other braces are left as they are. Unknown names and steps that do not exist are lesson errors
(core.lessons reports them with file and line). The names are `PLACEHOLDERS`, and
`QUALITY_PLACEHOLDERS` for explanation quality ({sparseness}, {deletion_gain_original}, ...), filled
from core.explain.quality.compare's table for the step's `quality_method` on the probe set (as the
Explanation quality page shows it), measured only for steps whose text names one.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches

import numpy as np
import pandas as pd

from core.distillation import lesson as distillation_lesson
from core.figures import format_bytes, format_percent, format_ratio
from core.figures.quality import number, reading
from core.metrics import CompressionReport

# name -> what it shows (the README and the lessons page list these).
PLACEHOLDERS: dict[str, str] = {
    "accuracy": "test accuracy of the compressed model, as the Overview's card shows it (98.0 %)",
    "accuracy_original": "test accuracy of the original model",
    "accuracy_change": "compressed minus original accuracy, in points (−0.5 points)",
    "agreement": "share of the test images on which both models give the same answer",
    "disagreements": "number of test images on which the two models give different answers",
    "test_images": "number of test images (1,000)",
    "sparsity": "share of the weights that are exactly zero",
    "size": "size of the compressed model (229.5 kB)",
    "size_original": "size of the original model as 32-bit numbers",
    "ratio": "compression ratio, original size ÷ compressed size (1.9×)",
    "first_layer": "name of the first layer (conv 1)",
    "first_layer_sparsity": "share of the first layer's weights that are zero",
    "largest_layer": "name of the layer with the most weights (fc 1)",
    "largest_layer_sparsity": "share of the largest layer's weights that are zero",
    "lowest_layer_sparsity": "the smallest share of zeros in any layer",
    "highest_layer_sparsity": "the largest share of zeros in any layer",
    "worst_class": "the class whose accuracy changed most for the worse (for digits: the digit)",
    "worst_class_accuracy": "that class's accuracy in the compressed model",
    "worst_class_accuracy_original": "that class's accuracy in the original model",
    "weights": "number of weights the compressed model stores in its Linear and Conv layers (a factored "
               "layer's two factors; 61,706)",
    "weights_original": "number of weights of the original's Linear and Conv layers",
    "macs": "multiply-accumulates per image left in the compressed model (nonzero weights)",
    "macs_original": "multiply-accumulates per image of the dense original",
    "speedup": "original MACs ÷ compressed MACs, a theoretical speed-up (2.5×)",
    "lowrank": "the low-rank setting in words (\"low-rank (90% of the energy kept, per layer)\", or \"off\")",
    "first_layer_rank": "the rank the first layer keeps after low-rank (\"2 of 6\"; \"all 6 (dense)\")",
    "largest_layer_rank": "the rank the largest layer keeps after low-rank (\"41 of 120\")",
}

# name -> what it shows: explanation quality on the probe set (core.explain.quality, the Explanation quality
# page), for the step's `quality_method`; computed only for the steps whose text names one of them.
QUALITY_PLACEHOLDERS: dict[str, str] = {
    "sparseness": "sparseness of the compressed model's maps, the Gini index of |map| (0.53; 1 = one pixel)",
    "sparseness_original": "the same for the original model's maps",
    "sparseness_random": "the same for maps of random noise (chance)",
    "sparseness_reading": "the change of sparseness in words, against its noise (simpler, no clear change)",
    "complexity": "complexity of the compressed model's maps, the entropy of |map| (6.17; lower = simpler)",
    "complexity_original": "the same for the original model's maps",
    "complexity_random": "the same for maps of random noise (chance)",
    "complexity_reading": "the change of complexity in words (simpler, more complex, no clear change)",
    "sensitivity": "max-sensitivity of the compressed model's maps, their largest change under a small nudge (0.41)",
    "sensitivity_original": "the same for the original model's maps",
    "sensitivity_random": "the same for a map redrawn at random for every nudged image (chance)",
    "sensitivity_reading": "the change of max-sensitivity in words (steadier, less steady, no clear change)",
    "deletion_gain": "deletion gain of the compressed model's maps over random pixel orderings (0.14; 0 = chance)",
    "deletion_gain_original": "the same for the original model's maps",
    "deletion_gain_reading": "the change of deletion gain in words (more faithful, less faithful, no clear change)",
    "completeness": "completeness gap of the compressed model's Integrated Gradients maps (0.011; 0 = complete)",
    "completeness_original": "the same for the original model's",
    "completeness_reading": "the change of the completeness gap in words",
}

# Placeholders of the Distillation page's figures, filled from its comparison (core.distillation.lesson).
PAGE_PLACEHOLDERS: dict[str, str] = dict(distillation_lesson.PLACEHOLDERS)
KNOWN: dict[str, str] = {**PLACEHOLDERS, **PAGE_PLACEHOLDERS, **QUALITY_PLACEHOLDERS}

_TOKEN = re.compile(r"\{(?:step(\d+)\.)?([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Placeholder:
    """One `{name}` or `{stepN.name}` in a text; step is None for the step's own figures."""

    token: str
    step: int | None
    name: str


def placeholders(text: str) -> list[Placeholder]:
    """Every placeholder in `text`, in order."""
    return [Placeholder(m.group(0), int(m.group(1)) if m.group(1) else None, m.group(2))
            for m in _TOKEN.finditer(text)]


def problem(placeholder: Placeholder, steps: int) -> str | None:
    """What is wrong with `placeholder` in a lesson of `steps` steps, in words; None when it is fine."""
    if placeholder.name not in KNOWN:
        close = get_close_matches(placeholder.name, list(KNOWN), n=1)
        hint = f"did you mean {{{close[0]}}}?" if close else f"known: {', '.join(KNOWN)}"
        return f"unknown placeholder {placeholder.token} ({hint})"
    if placeholder.step is not None and not 1 <= placeholder.step <= steps:
        return f"{placeholder.token} names step {placeholder.step}, but the lesson has {steps} steps"
    return None


def without_placeholders(text: str) -> str:
    """`text` with every placeholder replaced by a space (to check what an author typed in)."""
    return _TOKEN.sub(" ", text)


def names_needed(text: str, number: int, step: int) -> set[str]:
    """The placeholder names `text` (the text of step `number`) takes from step `step`'s figures."""
    return {p.name for p in placeholders(text) if (p.step or number) == step}


def quality_steps_needed(text: str, number: int) -> set[int]:
    """The steps whose explanation-quality figures (QUALITY_PLACEHOLDERS) `text`, of step `number`, needs."""
    return {p.step or number for p in placeholders(text) if p.name in QUALITY_PLACEHOLDERS}


def quality_figures(table: pd.DataFrame) -> dict[str, str]:
    """Every QUALITY_PLACEHOLDERS text from core.explain.quality.compare's table ("(not measured)" for the
    completeness figures of a method other than Integrated Gradients)."""
    values = dict.fromkeys(QUALITY_PLACEHOLDERS, "(not measured)")
    for _, row in table.iterrows():
        name = row["measure"]
        values.update({name: number(row["compressed"]), f"{name}_original": number(row["original"]),
                       f"{name}_reading": reading(row)})
        if f"{name}_random" in values:
            values[f"{name}_random"] = number(row["random"])
    return {name: values[name] for name in QUALITY_PLACEHOLDERS}


def steps_needed(text: str, number: int) -> set[int]:
    """The steps (1-based) whose figures `text`, the text of step `number`, needs."""
    return {p.step or number for p in placeholders(text)}


def fill(text: str, figures: Mapping[int, Mapping[str, str]], number: int) -> str:
    """`text` of step `number` with every placeholder replaced by `figures[step][name]`."""
    return _TOKEN.sub(lambda m: figures[int(m.group(1)) if m.group(1) else number][m.group(2)], text)


def format_accuracy(fraction: float) -> str:
    """An accuracy as the metric cards write it (ui.panels.percent): 0.9804 -> "98.0 %"."""
    return f"{100 * fraction:.1f} %"


def _points(change: float) -> str:
    return f"{100 * change:+.1f} points".replace("-", "\u2212")


def _layer_names(report: CompressionReport) -> list[str]:
    """Layer names as every chart writes them (core.layers.layer_labels without the shape): conv 1, fc 1."""
    counts, names = {"conv": 0, "fc": 0}, []
    for stats in report.compressed_layers:
        kind = "conv" if stats.kind == "conv" else "fc"
        counts[kind] += 1
        names.append(f"{kind} {counts[kind]}")
    return names


def figures(report: CompressionReport) -> dict[str, str]:
    """Every placeholder's text for one report, formatted as the app shows it."""
    original, compressed = report.original, report.compressed
    layers, names = report.compressed_layers, _layer_names(report)
    largest = max(range(len(layers)), key=lambda i: layers[i].params)
    shares = [s.sparsity for s in layers]
    seen = original.per_class_count > 0
    change = np.where(seen, compressed.per_class_accuracy - original.per_class_accuracy, np.inf)
    worst = int(np.argmin(change))
    n = len(original.labels)
    values = {
        "accuracy": format_accuracy(compressed.accuracy),
        "accuracy_original": format_accuracy(original.accuracy),
        "accuracy_change": _points(report.accuracy_change),
        "agreement": format_percent(report.agreement),
        "disagreements": f"{int(np.sum(original.predictions != compressed.predictions)):,}",
        "test_images": f"{n:,}",
        "sparsity": format_percent(report.sparsity),
        "size": format_bytes(report.size_compressed_bytes),
        "size_original": format_bytes(report.size_original_bytes),
        "ratio": format_ratio(report.compression_ratio),
        "first_layer": names[0],
        "first_layer_sparsity": format_percent(shares[0]),
        "largest_layer": names[largest],
        "largest_layer_sparsity": format_percent(shares[largest]),
        "lowest_layer_sparsity": format_percent(min(shares)),
        "highest_layer_sparsity": format_percent(max(shares)),
        "worst_class": str(worst),
        "worst_class_accuracy": format_percent(compressed.per_class_accuracy[worst]),
        "worst_class_accuracy_original": format_percent(original.per_class_accuracy[worst]),
        "weights": f"{report.prunable_params:,}",
        "weights_original": f"{sum(s.params for s in report.original_layers):,}",
        "macs": f"{report.remaining_macs:,}",
        "macs_original": f"{report.dense_macs:,}",
        "speedup": format_ratio(report.theoretical_speedup),
        "lowrank": report.config.step("lowrank").describe() if report.config.step("lowrank").active() else "off",
        "first_layer_rank": _rank(layers[0]),
        "largest_layer_rank": _rank(layers[largest]),
    }
    return values


def _rank(stats) -> str:
    """"41 of 120" for a factored layer, "all 120 (dense)" for a dense one."""
    return f"all {stats.full_rank} (dense)" if stats.rank is None else f"{stats.rank} of {stats.full_rank}"
