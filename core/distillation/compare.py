"""Teacher and students side by side: accuracy with its 95 % interval, size, agreement with the teacher,
and how alike their explanations are ("do students explain like their teachers?").

Every map explains the TEACHER's predicted class (as the app's compressed maps explain the
original's), so a map agreement compares the same question asked of two models. Map agreement is
the rank correlation of |map| on the pixels where either map is nonzero (core.explain.agreement),
averaged over a fixed class-stratified probe set; the teacher against itself would score 1.
No model is modified (evaluate and attribute only read them; compress works on a copy).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

import models
from core.compression import compress, CompressionConfig
from core.data import Dataset
from core.explain.agreement import saliency_agreement
from core.explain.attribution import attribute, methods_for
from core.metrics import compression_report, evaluate, layer_stats, model_storage_bits, parameter_count
from core.figures import format_bytes
from core.stats import accuracy_interval

PROBE_SIZE = 64  # class-balanced test images whose maps give the mean map agreement (as the sweeps' probes)
# Panel titles of the maps (about 10 characters fit above a panel on a phone), per kind of distillation.
SHORT_LABELS = {"knowledge": {"teacher": "teacher", "distilled": "distilled", "label_only": "labels only",
                              "compressed": "compressed"},
                "data": {"teacher": "all data", "kcenter": "k-center", "random": "random"}}
COLUMNS = ["model", "label", "accuracy", "accuracy_low", "accuracy_high", "parameters", "size_bytes", "agreement",
           "map_spearman", "map_spearman_std"]


@dataclass(frozen=True, eq=False)
class Comparison:
    """The table (one row per model, COLUMNS), and for the shown test images each model's maps and answers.

    maps[name]: (S, H, W) for the `shown` rows; predictions[name]: (S,) class indices; spearman[name]:
    (S,) agreement of that model's map with the teacher's, per shown image.
    """

    table: pd.DataFrame
    shown: np.ndarray
    maps: dict[str, torch.Tensor]
    predictions: dict[str, np.ndarray]
    spearman: dict[str, np.ndarray]


def storage_bytes(model: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """A dense model's size as the app counts storage (core.metrics: 32 bits per parameter)."""
    return model_storage_bits(model, layer_stats(model, input_shape)) / 8


def compare(teacher: nn.Module, students: Mapping[str, tuple[str, nn.Module]], data: Dataset, method: str,
            probe: np.ndarray, shown: np.ndarray, compression: CompressionConfig | None = None,
            teacher_label: str = "teacher") -> Comparison:
    """The teacher (row "teacher") and every student (name -> (label, model)) on the test set.

    probe: test rows whose maps give the mean map agreement; shown: test rows whose maps are
    returned. compression: also a row "compressed" for the first student compressed with it.
    """
    x, y, n = data.x_test, data.y_test, len(data.y_test)
    reference = evaluate(teacher, x, y)
    rows_all = np.union1d(probe, shown)
    target = torch.as_tensor(reference.predictions[rows_all])
    inputs = x[torch.as_tensor(rows_all)]
    teacher_maps = attribute(teacher, inputs, target, method)
    where = np.searchsorted(rows_all, shown)
    in_probe = np.isin(rows_all, probe)
    table, maps, predictions, spearman = [], {}, {}, {}
    for name, (label, model) in {"teacher": (teacher_label, teacher), **students}.items():
        own = reference if model is teacher else evaluate(model, x, y)
        own_maps = teacher_maps if model is teacher else attribute(model, inputs, target, method)
        rho = saliency_agreement(teacher_maps, own_maps)["spearman_abs"].numpy()
        low, high = accuracy_interval(own.accuracy, n)
        table.append({"model": name, "label": label, "accuracy": own.accuracy, "accuracy_low": low,
                      "accuracy_high": high, "parameters": parameter_count(model),
                      "size_bytes": storage_bytes(model, data.input_shape),
                      "agreement": float(np.mean(own.predictions == reference.predictions)),
                      "map_spearman": float(rho[in_probe].mean()), "map_spearman_std": float(rho[in_probe].std())})
        maps[name], predictions[name], spearman[name] = own_maps[where], own.predictions[shown], rho[where]
    if compression is not None and students:
        table.append(_compressed_row(next(iter(students.values()))[1], compression, data, reference))
    return Comparison(pd.DataFrame(table, columns=COLUMNS), shown, maps, predictions, spearman)


def _compressed_row(student: nn.Module, cfg: CompressionConfig, data: Dataset, reference) -> dict:
    """The first student compressed with `cfg` (a copy): its accuracy, stored size and agreement with the teacher."""
    small = compress(student, cfg, calibration=data.x_train[:256])
    report = compression_report(student, small, cfg, data.x_test, data.y_test)
    low, high = accuracy_interval(report.compressed.accuracy, len(data.y_test))
    return {"model": "compressed", "label": f"distilled student, {cfg.describe()}",
            "accuracy": report.compressed.accuracy, "accuracy_low": low, "accuracy_high": high,
            "parameters": report.total_params, "size_bytes": report.size_compressed_bytes,
            "agreement": float(np.mean(report.compressed.predictions == reference.predictions)),
            "map_spearman": float("nan"), "map_spearman_std": float("nan")}


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison in words and formatted numbers, for the page (no NaN: a measure not taken reads "–")."""
    def maps(row) -> str:
        if row["model"] == "teacher":
            return "1 (itself)"
        if pd.isna(row["map_spearman"]):
            return "–"
        return f"{row['map_spearman']:.2f} ± {row['map_spearman_std']:.2f}"
    return pd.DataFrame({
        "model": table["label"],
        "test accuracy": [f"{100 * a:.1f} %" for a in table["accuracy"]],
        "95 % interval": [f"{100 * lo:.1f}–{100 * hi:.1f} %" for lo, hi in zip(table["accuracy_low"],
                                                                              table["accuracy_high"])],
        "parameters": [f"{int(p):,}" for p in table["parameters"]],
        "size": [format_bytes(s) for s in table["size_bytes"]],
        "same answer as the teacher": [f"{100 * a:.1f} %" for a in table["agreement"]],
        "maps like the teacher's (ρ)": [maps(row) for _, row in table.iterrows()],
    })


def methods_for_all(names: Sequence[str], data: Dataset) -> list[str]:
    """The explanation methods every registered model in `names` offers (Grad-CAM needs a conv layer in each)."""
    with torch.random.fork_rng(devices=[]):
        offered = [methods_for(models.create_model(n, data.input_shape, data.num_classes)) for n in names]
    return [m for m in offered[0] if all(m in o for o in offered[1:])]


def verdict(table: pd.DataFrame, baseline: str, candidate: str, n: int) -> str:
    """One sentence: `candidate`'s accuracy against `baseline`'s (rows by model name), and whether it is noise."""
    rows = table.set_index("model")
    a, b = rows.loc[baseline], rows.loc[candidate]
    change = f"{100 * (b['accuracy'] - a['accuracy']):+.1f}".replace("-", "\u2212")
    overlap = max(a["accuracy_low"], b["accuracy_low"]) <= min(a["accuracy_high"], b["accuracy_high"])
    noise = (f"their 95 % intervals overlap, so on {n:,} test images this difference may be noise"
             if overlap else f"their 95 % intervals do not overlap: more than the noise of {n:,} test images")
    return (f"The {b['label']} scores **{100 * b['accuracy']:.1f} %**, the {a['label']} {100 * a['accuracy']:.1f} % "
            f"({change} points); {noise}.")
