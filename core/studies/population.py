"""Populations of models and the examples compression makes them forget (Hooker et al. 2019).

Hooker et al., "What Do Compressed Deep Neural Networks Forget?" (REFERENCE §5), train a
population of models that differ only in their seed (they used 30; the app defaults to
5), compress every member, and compare the two populations instead of two single
models, so that seed noise is not mistaken for the effect of compression:

- A Pruning Identified Exemplar (PIE) is a test example whose modal (most frequent)
  prediction over the compressed population differs from the modal prediction over
  the original population. Ties in a vote go to the LARGEST label (REFERENCE §5).
- A class is disparately affected when the per-member relative change of its recall
  differs from the per-member relative change of overall accuracy (Welch t-test,
  p <= 0.05). With 10 classes, up to 1 - 0.95^10 = 40 % of settings flag at least one
  class by chance; the paper makes no correction and neither do we (p-values are
  reported so a reader can apply one).

Arrays in and out are numpy; nothing here modifies a model: predictions run under
`torch.inference_mode()`, compressed members are copies made by `core.compression`, and
maps come from `core.explain.attribution.attribute` (no hooks, flags or gradients left behind).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from scipy.stats import ttest_ind
from torch import Tensor, nn

from core.explain.attribution import attribute
from core.compression import CompressionConfig, compress
from core.studies.executor import run_tasks
from core.training import Progress, TrainConfig

SIGNIFICANCE = 0.05      # Hooker et al.'s threshold for "disparately affected"
DEFAULT_SIZE = 5         # members; the paper used 30, too slow to train in a classroom
BATCH = 256              # same batch as core.metrics.evaluate (faster than one big batch on LeNet-5)


def population_configs(base: TrainConfig, size: int = DEFAULT_SIZE) -> list[TrainConfig]:
    """`size` training configs equal to `base` except for the seed: base.seed, ..., base.seed + size - 1."""
    if size < 1:
        raise ValueError(f"a population needs at least one member, got size={size}")
    return [replace(base, seed=base.seed + i) for i in range(size)]


def compress_population(models: Sequence[nn.Module], cfg: CompressionConfig) -> list[nn.Module]:
    """One compressed copy per member (`core.compression.compress`); the inputs are untouched.

    Random pruning draws a different subset per member: member i uses seed cfg.seed + i
    (== i for the default seed 0), so the population does not share one random mask.
    """
    return [compress(model, replace(cfg, seed=cfg.seed + i)) for i, model in enumerate(models)]


def population_predictions(models: Sequence[nn.Module], x: Tensor, batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Predictions (M, N) int64 and softmax probabilities (M, N, K) float32 of M eval-mode models.

    x: (N, C, H, W), only read. Runs in batches of `batch` under inference_mode; the
    models are neither put in eval mode nor changed (they must arrive in eval mode).
    """
    if not models:
        raise ValueError("the population is empty")
    with torch.inference_mode():
        logits = torch.stack([torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).float()
                              for model in models])
        # Classes from the logits, as core.metrics.evaluate: float32 softmax can saturate into ties.
        return logits.argmax(dim=2).numpy().astype(np.int64), torch.softmax(logits, dim=2).numpy()


def _as_labels(labels: np.ndarray | Tensor | Sequence[int]) -> np.ndarray:
    """Labels as an int64 numpy copy."""
    values = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else labels
    return np.array(values, dtype=np.int64)


def modal_prediction(predictions: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """The most frequent label of each column of `predictions` (M, N) -> (N,) int64; ties -> largest label.

    num_classes defaults to max label + 1. The input is only read.
    """
    preds = np.asarray(predictions, dtype=np.int64)
    if preds.ndim != 2 or preds.shape[0] == 0:
        raise ValueError(f"predictions must be shaped (members, examples) with members >= 1, got {preds.shape}")
    k = int(preds.max()) + 1 if num_classes is None else num_classes
    votes = (preds[:, :, None] == np.arange(k)).sum(axis=0)             # (N, K)
    # argmax returns the FIRST maximum: searching the reversed classes makes it the largest label.
    return (k - 1 - np.argmax(votes[:, ::-1], axis=1)).astype(np.int64)


def pie_mask(orig_preds: np.ndarray, comp_preds: np.ndarray) -> np.ndarray:
    """(N,) bool: True for the PIEs, the examples whose modal compressed and modal original predictions differ."""
    orig, comp = np.asarray(orig_preds), np.asarray(comp_preds)
    if orig.ndim != 2 or comp.ndim != 2 or orig.shape[1] != comp.shape[1]:
        raise ValueError(f"need two (members, examples) arrays over the same examples, "
                         f"got {orig.shape} and {comp.shape}")
    k = int(max(orig.max(), comp.max())) + 1
    return modal_prediction(orig, k) != modal_prediction(comp, k)


def pie_rate(orig_preds: np.ndarray, comp_preds: np.ndarray) -> float:
    """Fraction (0..1) of examples that are PIEs."""
    return float(pie_mask(orig_preds, comp_preds).mean())


def forgotten_examples(orig_preds: np.ndarray, comp_preds: np.ndarray, orig_probs: np.ndarray,
                       comp_probs: np.ndarray, labels: np.ndarray | Tensor) -> pd.DataFrame:
    """One row per PIE, the largest drop in confidence first.

    orig/comp_preds (M, N) and orig/comp_probs (M, N, K) as from `population_predictions`;
    labels (N,). Columns: index (position in the inputs), label, modal_original,
    modal_compressed, confidence_original / confidence_compressed (mean over members of
    the probability of the ORIGINAL modal class), confidence_drop (their difference,
    positive = the compressed population is less sure of the original's answer).
    Ties in the drop keep index order. Inputs are only read.
    """
    labels = _as_labels(labels)
    k = np.asarray(orig_probs).shape[2]
    modal_orig, modal_comp = modal_prediction(orig_preds, k), modal_prediction(comp_preds, k)
    if labels.shape != modal_orig.shape:
        raise ValueError(f"need one label per example: {labels.shape} labels for {modal_orig.shape} examples")
    rows = np.arange(len(labels))
    # Mean of each population separately: equal to the mean of per-member differences when
    # both populations have the same members, and still defined when they do not.
    conf_orig = np.asarray(orig_probs)[:, rows, modal_orig].mean(axis=0)
    conf_comp = np.asarray(comp_probs)[:, rows, modal_orig].mean(axis=0)
    pies = np.flatnonzero(modal_orig != modal_comp)
    frame = pd.DataFrame({
        "index": pies, "label": labels[pies], "modal_original": modal_orig[pies],
        "modal_compressed": modal_comp[pies], "confidence_original": conf_orig[pies],
        "confidence_compressed": conf_comp[pies], "confidence_drop": (conf_orig - conf_comp)[pies],
    })
    return frame.sort_values("confidence_drop", ascending=False, kind="stable").reset_index(drop=True)


def class_accuracy(predictions: np.ndarray, labels: np.ndarray | Tensor,
                   num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-member recall per class (M, K) and overall accuracy (M,) from predictions (M, N).

    A class without examples gets recall 0.0 (never NaN), as in `core.metrics.evaluate`.
    """
    preds = np.asarray(predictions, dtype=np.int64)
    labels = _as_labels(labels)
    correct = (preds == labels[None, :]).astype(np.float64)
    onehot = (labels[:, None] == np.arange(num_classes)).astype(np.float64)  # (N, K); float: bool @ is a logical OR
    count = onehot.sum(axis=0)
    per_class = np.divide(correct @ onehot, count, out=np.zeros((len(preds), num_classes)), where=count > 0)
    return per_class, correct.mean(axis=1)


def pie_curve(models: Sequence[nn.Module], x: Tensor, labels: np.ndarray | Tensor, cfg: CompressionConfig,
              sparsities: Sequence[float], progress: Progress | None = None) -> pd.DataFrame:
    """Forgotten examples against sparsity, at cfg's pruning method, scope and bit width.

    One row per sparsity: sparsity, forgotten (PIE count), rate (0..1), accuracy of the
    original and compressed populations (mean over members) and of their modal votes.
    The originals are evaluated once; each point compresses every member
    (`compress_population` with prune_amount = sparsity) and runs one batched forward
    per member. `progress(fraction, message)` is called as each point is done. Inputs are
    only read.
    """
    labels = _as_labels(labels)
    orig_preds, orig_probs = population_predictions(models, x)
    k = orig_probs.shape[2]
    modal_orig = modal_prediction(orig_preds, k)
    rows, done = [], [0]

    def tick(_: int) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0] / len(sparsities), f"{done[0]} of {len(sparsities)} sparsities")

    # One task per sparsity (core.studies.executor: in turn on threads, side by side on Ray).
    predicted = run_tasks(_compressed_predictions, sparsities, 1, tick, shared=(models, x, cfg))
    for sparsity, comp_preds in zip(sparsities, predicted):
        modal_comp = modal_prediction(comp_preds, k)
        forgotten = modal_orig != modal_comp
        rows.append({
            "sparsity": float(sparsity), "forgotten": int(forgotten.sum()), "rate": float(forgotten.mean()),
            "accuracy_original": float((orig_preds == labels).mean()),
            "accuracy_compressed": float((comp_preds == labels).mean()),
            "modal_accuracy_original": float((modal_orig == labels).mean()),
            "modal_accuracy_compressed": float((modal_comp == labels).mean()),
        })
    frame = pd.DataFrame(rows)
    frame.attrs.update(method=cfg.prune_method, scope=cfg.prune_scope, bits=cfg.weight_bits, members=len(models))
    return frame


def _compressed_predictions(models: Sequence[nn.Module], x: Tensor, cfg: CompressionConfig,
                            sparsity: float) -> np.ndarray:
    """The compressed population's predictions (M, N) at `sparsity` (a task of `pie_curve`, shippable to Ray)."""
    return population_predictions(compress_population(models, replace(cfg, prune_amount=float(sparsity))), x)[0]


def class_impact(orig_per_class: np.ndarray, comp_per_class: np.ndarray, orig_overall: np.ndarray,
                 comp_overall: np.ndarray, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Per class: accuracy change and whether compression hits it disparately (Welch t-test).

    orig/comp_per_class (M, K) recall per member and class; orig/comp_overall (M,). For
    each class the per-member relative recall change (comp - orig) / orig is compared
    with the per-member relative overall change by `scipy.stats.ttest_ind(equal_var=False)`.
    Columns: class, accuracy_original, accuracy_compressed, change (mean over members, in
    fractions), relative_change, overall_change, overall_relative_change, t (negative = the
    class loses relatively more than overall), p_value, degenerate, disparate, direction
    ("worse" / "better" than overall when disparate, else "").

    Degenerate: fewer than 2 members with a defined relative change on either side
    (a member whose original recall is 0 has none), or both sides without variance
    (e.g. nothing changed at all). The test is then undefined: t = 0.0, p_value = 1.0,
    degenerate = True and disparate = False, never NaN. Inputs are only read.
    """
    o_c, c_c = np.asarray(orig_per_class, dtype=float), np.asarray(comp_per_class, dtype=float)
    o_a, c_a = np.asarray(orig_overall, dtype=float), np.asarray(comp_overall, dtype=float)
    if o_c.ndim != 2 or o_c.shape != c_c.shape or o_a.shape != c_a.shape or o_a.shape != (o_c.shape[0],):
        raise ValueError(f"need (M, K) per-class and (M,) overall arrays, "
                         f"got {o_c.shape}, {c_c.shape}, {o_a.shape}, {c_a.shape}")
    rel_class = _relative(o_c, c_c)
    rel_overall = _relative(o_a, c_a)
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(o_c.shape[1])]
    rows = []
    for j, name in enumerate(names):
        t, p, degenerate = _welch(rel_class[:, j], rel_overall)
        disparate = (not degenerate) and p <= SIGNIFICANCE
        rows.append({
            "class": name, "accuracy_original": o_c[:, j].mean(), "accuracy_compressed": c_c[:, j].mean(),
            "change": (c_c[:, j] - o_c[:, j]).mean(), "relative_change": _nanmean(rel_class[:, j]),
            "overall_change": (c_a - o_a).mean(), "overall_relative_change": _nanmean(rel_overall),
            "t": t, "p_value": p,
            "degenerate": degenerate, "disparate": disparate,
            "direction": ("worse" if t < 0 else "better") if disparate else "",
        })
    return pd.DataFrame(rows)


def _relative(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(after - before) / before, NaN where before == 0 (a relative change from nothing is undefined)."""
    return np.divide(after - before, before, out=np.full(before.shape, np.nan), where=before != 0)


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else 0.0


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, bool]:
    """(t, p, degenerate) of Welch's test between the finite values of a and b."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    # np.ptp == 0 rather than var == 0: rounding makes identical values' variance ~1e-33.
    if min(a.size, b.size) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return 0.0, 1.0, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant samples: the result is still usable
        result = ttest_ind(a, b, equal_var=False)
    t, p = float(result.statistic), float(result.pvalue)
    if not (np.isfinite(t) and np.isfinite(p)):
        return 0.0, 1.0, True
    return t, p, False


def population_maps(models: Sequence[nn.Module], x: Tensor, target: Tensor | int | None, method: str,
                    normalize: bool = True, **options) -> Tensor:
    """Mean attribution map over the members: (N, H, W) float32 for x (N, C, H, W).

    Each member's maps come from `core.explain.attribution.attribute` (no model or input is
    changed). Pass target = the original population's modal prediction so every member
    explains the same class (None lets each member explain its own prediction). With
    `normalize`, each member's map is first divided by its per-image max |value|, so
    that every member counts equally whatever the scale of its gradients; all-zero
    maps stay zero. Raises ValueError for a method the model cannot use (grad_cam on an MLP).
    """
    if not models:
        raise ValueError("the population is empty")
    if isinstance(target, Tensor):
        target = target.detach().clone()  # an inference-mode tensor would break Captum's autograd graph
    total = None
    for model in models:
        maps = attribute(model, x, target, method, **options)
        if normalize:
            peak = maps.abs().amax(dim=(1, 2), keepdim=True)
            maps = torch.where(peak > 0, maps / peak.clamp_min(1e-30), torch.zeros_like(maps))
        total = maps if total is None else total + maps
    return total / len(models)
