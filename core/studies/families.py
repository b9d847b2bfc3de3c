"""Every compression family side by side: at the same size, which keeps accuracy and explanations best?

Each registered step that offers `sweep_points()` is one **line**: the step alone (every other
step off), walked from mild to strong, its other settings taken from the sidebar's. A step's
`pairs_with` names the steps it is commonly combined with (prune + share, as Deep Compression;
low-rank + quantize); each such pair is a line too, the two walks zipped mild with mild, strong
with strong. Nothing here names a family: the registry does.

`measure_families` compresses and measures every point per seed against that seed's original
(core.studies.sweeps' references: the original's predictions and maps computed once), on worker
threads or Ray tasks (core.studies.executor), and adds the storage size of each compressed model
(core.metrics' accounting). The result has one row per point and seed; `pareto_front` and `at_ratio` read it.

A distilled student (core.distillation, trained elsewhere: never here) adds `measure_student`'s lines,
alone and quantized, measured against its teacher (the original) exactly as the other lines are.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from torch import nn

from core.compression import STEPS, CompressionConfig, compress, get_step, ordered
from core.compression.activations import CALIBRATION_IMAGES
from core.compression.steps import calibration_or
from core.data import Dataset
from core.explain.attribution import methods_for
from core.metrics import FP32_BITS, evaluate, layer_stats, model_storage_bits, parameter_count, prediction_agreement
from core.studies.sweep_plan import CONFIG_COLUMNS, SweepConfig
from core.studies.executor import run_tasks
from core.studies.sweeps import measure_point, references

Progress = Callable[[float, str], None]
# Issue 8 §3's combination for a distilled student (distillation is training-side, not a registered step).
STUDENT_PARTNER = "quantize"
METRICS = {"accuracy": "Test accuracy", "agreement": "Prediction agreement with the original",
           "spearman_abs_mean": "Explanation agreement (rank correlation of |maps|)"}


@dataclass(frozen=True)
class Line:
    """One family (or pair of families) walked from mild to strong."""

    key: str                                  # "prune", "prune+quantize"
    label: str                                # "Pruning", "Pruning + Quantization"
    points: tuple[CompressionConfig, ...]


@dataclass(frozen=True)
class FamiliesConfig:
    """What the comparison measures; frozen, so it is a safe cache key."""

    base: CompressionConfig = CompressionConfig()   # the sidebar's setting: each family's other settings
    method: str = "saliency"                        # attribution method for the explanation agreement
    probe_size: int = 64
    seeds: tuple[int, ...] = (0,)

    def sweep(self) -> SweepConfig:
        return SweepConfig(base=self.base, method=self.method, probe_size=self.probe_size, seeds=self.seeds)


def lines(base: CompressionConfig) -> list[Line]:
    """Every family's line and every declared pair's, in pipeline order (pairs after their singles)."""
    found = []
    for name in ordered():
        points = base.step(name).sweep_points()
        if points:
            found.append(Line(name, get_step(name).title, tuple(replace(base.only(name), **p) for p in points)))
    for name in ordered():
        for partner in getattr(get_step(name), "pairs_with", ()):
            if partner not in STEPS:
                continue  # a family this build does not have
            own, other = base.step(name).sweep_points(), base.step(partner).sweep_points()
            first, second = sorted((name, partner), key=lambda n: get_step(n).order)
            points = tuple(replace(base.only(name, partner), **p, **q) for p, q in zip(other, own))
            if points:
                found.append(Line(f"{first}+{second}", f"{get_step(first).title} + {get_step(second).title}", points))
    return found


def measure_families(originals: nn.Module | Sequence[nn.Module], data: Dataset, cfg: FamiliesConfig,
                     progress: Progress | None = None, workers: int = 2) -> pd.DataFrame:
    """One row per (line, point, seed), plus the sidebar's own setting (line "current") and the original.

    Columns: seed, line, label, point, the CompressionConfig fields, size_bytes, ratio (original size ÷
    compressed), accuracy, agreement, the saliency agreement columns of core.studies.sweeps. Inputs are
    only read. Raises ValueError (in words) when the sweep cannot run (see sweeps.sweep_problem).
    """
    models = [originals] if isinstance(originals, nn.Module) else list(originals)
    sweep = cfg.sweep()
    refs = references(models, data, sweep)
    tasks = [(i, line.key, line.label, k, point) for i in range(len(models))
             for line in [*lines(cfg.base), Line("current", "Sidebar setting", (cfg.base,))]
             for k, point in enumerate(line.points)]
    rows = _measure(models, models, refs, cfg.seeds, tasks, data, sweep, progress, workers)
    originals_rows = [{"seed": s, "line": "original", "label": "Original (32-bit floats)", "point": 0,
                       **{c: getattr(CompressionConfig(), c) for c in CONFIG_COLUMNS},
                       "size_bytes": FP32_BITS * parameter_count(m) / 8, "ratio": 1.0,
                       "accuracy": r.evaluation.accuracy, "agreement": 1.0, "spearman_abs_mean": 1.0}
                      for s, m, r in zip(cfg.seeds, models, refs)]
    return pd.DataFrame(rows + originals_rows)


def _measure(models: list[nn.Module], originals: list[nn.Module], refs: list, seeds: Sequence[int],
             tasks: list[tuple], data: Dataset, sweep: SweepConfig, progress: Progress | None,
             workers: int) -> list[dict]:
    """Rows of tasks (index into the lists, line, label, point index, config), on threads or Ray.

    models[i] is compressed; originals[i] gives the size the ratio is against (the teacher's fp32 size,
    for a student); refs[i] (the original's answers and maps) is what every measure compares with.
    """
    report = progress or (lambda fraction, message: None)
    # Steps that calibrate (activations) use the model's registered training images, else the data's.
    images = [calibration_or(m, data.x_train, CALIBRATION_IMAGES) for m in models]
    done = [0]

    def tick(_: int) -> None:
        done[0] += 1
        report(done[0] / len(tasks), f"{done[0]} of {len(tasks)} settings")

    return run_tasks(_measure_family_point, tasks, workers, tick,
                     shared=(models, originals, images, refs, data, sweep, tuple(seeds)))


def _measure_family_point(models: list[nn.Module], originals: list[nn.Module], images: list, refs: list,
                          data: Dataset, sweep: SweepConfig, seeds: tuple[int, ...], task: tuple) -> dict:
    """One point of `_measure` (module level, so it can be shipped to Ray)."""
    i, key, label, k, point = task
    compressed = compress(models[i], point, calibration=images[i])
    size = model_storage_bits(compressed, layer_stats(compressed, tuple(data.x_test.shape[1:]), point)) / 8
    if sweep.method in methods_for(compressed):
        measured = measure_point(compressed, refs[i], data, sweep, full=False)
    else:  # a student without the method's layer (Grad-CAM on an MLP): answers only, maps not compared
        ev = evaluate(compressed, data.x_test, data.y_test)
        measured = {"accuracy": ev.accuracy, "agreement": prediction_agreement(ev, refs[i].evaluation),
                    "spearman_abs_mean": math.nan}
    full_size = FP32_BITS * parameter_count(originals[i]) / 8
    return {"seed": seeds[i], "line": key, "label": label, "point": k,
            **{c: getattr(point, c) for c in CONFIG_COLUMNS}, "size_bytes": size,
            "ratio": full_size / size if size else math.inf, **measured}


def student_lines(base: CompressionConfig, label: str) -> list[Line]:
    """The distilled student alone (one point: as trained) and, when the registry has quantization, the
    student walked by quantization's points at the sidebar's other quantization settings."""
    found = [Line("distill", label, (CompressionConfig(),))]
    if STUDENT_PARTNER in STEPS:
        points = tuple(replace(base.only(STUDENT_PARTNER), **p) for p in base.step(STUDENT_PARTNER).sweep_points())
        if points:
            found.append(Line(f"distill+{STUDENT_PARTNER}", f"{label} + {get_step(STUDENT_PARTNER).title}", points))
    return found


def measure_student(teacher: nn.Module, student: nn.Module, data: Dataset, cfg: FamiliesConfig,
                    label: str = "Distilled student", progress: Progress | None = None, workers: int = 2,
                    refs: Sequence | None = None) -> pd.DataFrame:
    """The student's lines (`student_lines`) measured as every other line, against its TEACHER (the original).

    x: the student's own compressed size; ratio: the teacher's fp32 size ÷ it; accuracy on the test set;
    agreement: same answer as the teacher; explanation agreement: the student's maps against the teacher's
    on the same probes, both explaining the teacher's answer (NaN when the student has no layer for the
    method, e.g. Grad-CAM on an MLP). One seed: the teacher's (cfg.seeds[0]). Columns as measure_families'.
    `refs`: the teacher's references (sweeps.references), when already computed. Inputs are only read.
    """
    sweep = replace(cfg.sweep(), seeds=cfg.seeds[:1])
    ref = (refs or references([teacher], data, sweep))[0]
    tasks = [(0, line.key, line.label, k, point)
             for line in student_lines(cfg.base, label) for k, point in enumerate(line.points)]
    return pd.DataFrame(_measure([student], [teacher], [ref], cfg.seeds[:1], tasks, data, sweep, progress, workers))


def summarize_lines(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and sample std over seeds of size and `metric`, one row per (line, point) (a new frame).

    Rows without the metric (a student's maps for a method it has no layer for) are left out."""
    groups = table.dropna(subset=[metric]).groupby(["line", "label", "point"], sort=False)
    out = groups.agg(size_bytes=("size_bytes", "mean"), ratio=("ratio", "mean"), value=(metric, "mean"),
                     spread=(metric, "std"), n_seeds=("seed", "nunique")).reset_index()
    out["spread"] = out["spread"].fillna(0.0)  # one seed: no spread
    return out


def pareto_front(summary: pd.DataFrame) -> np.ndarray:
    """Which rows no other row beats in both size (smaller) and value (higher): a boolean mask."""
    size, value = summary["size_bytes"].to_numpy(float), summary["value"].to_numpy(float)
    front = np.ones(len(summary), dtype=bool)
    for i in range(len(summary)):
        better = (size <= size[i]) & (value >= value[i]) & ((size < size[i]) | (value > value[i]))
        front[i] = not better.any()
    return front


def at_ratio(summary: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """Each line's value at `ratio`× smaller than the original, interpolated in log size between its two
    nearest points; only lines whose points reach that ratio on both sides (no extrapolation)."""
    rows = []
    for (key, label), line in summary[~summary["line"].isin(["current", "original"])].groupby(
            ["line", "label"], sort=False):
        r, v = line["ratio"].to_numpy(float), line["value"].to_numpy(float)
        order = np.argsort(r)
        r, v = r[order], v[order]
        finite = np.isfinite(r)
        r, v = r[finite], v[finite]
        if len(r) == 0 or not r[0] <= ratio <= r[-1]:
            continue
        rows.append({"line": key, "label": label, "value": float(np.interp(np.log(ratio), np.log(r), v))})
    return pd.DataFrame(rows, columns=["line", "label", "value"])
