"""Sweeps over compression settings: how accuracy and explanations change with sparsity and bits.

A sweep is a list of compression points (its plan, `core.sweep_plan`, whose names are
re-exported here). Points that give the same compressed model (amount 0 makes method
and scope irrelevant, 32 bits makes scheme and granularity irrelevant) are computed
once. Each point is measured on a worker thread (torch frees
the GIL in its kernels); every call into the models is batched. Inputs are never
modified: `compress` and `fine_tune` work on copies, attribution is side-effect free.

Every map, original or compressed, explains the ORIGINAL model's predicted class of the
probe image (as the saliency page does), so maps are comparable and the faithfulness
scores (deletion/insertion AUC, infidelity) use that same class.

Columns of the DataFrame (one row per point x seed; also the downloadable CSV):
  curve               "sparsity" | "bits" | "grid" | "reference" (tradeoff_sweep adds one row per
                      seed for the uncompressed model, baseline "uncompressed": the line to beat)
  baseline            a name from BASELINES (or the sidebar's own method, see baselines_for)
  matches_sidebar     True for rows of the sidebar's own pruning method and scope
  seed                training seed of the original (random pruning uses base.seed + seed)
  prune_method, prune_scope, prune_amount, weight_bits, quant_scheme, quant_granularity
  sparsity            measured share of exactly-zero prunable weights (after quantization)
  fine_tuned          True when the pruned model was fine-tuned (mask fixed) before quantizing
  accuracy            on the full test set; agreement: share of test predictions equal to the original's
  {spearman_abs, spearman, topk, ssim}_{mean, std}  saliency agreement with the original's
                      maps, mean and population std over the probe images
  degenerate          number of probes whose map (or the original's) is constant on the pixels where
                      either is nonzero (rank correlations there are 1 or 0 by definition, core.agreement)
  deletion_gain, insertion_gain, infidelity_gain  faithfulness of the compressed model's own maps
                      over chance (core.faithfulness): how much better than random pixel orderings
                      (random maps for infidelity) the map does, 0 = chance; means over the probes
  deletion_auc, deletion_random_auc, insertion_auc, insertion_random_auc  the raw AUCs of the maps
                      and of random orderings of the same images on the same model
  infidelity, infidelity_random  normalized infidelity of the maps and of random maps, for signed
                      methods only (NaN for saliency, SmoothGrad, Grad-CAM); faithfulness columns
                      are NaN on grid rows, which skip them
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor, nn

from core.attribution import attribute, is_signed, methods_for, saliency_agreement
from core.compression import CompressionConfig, compress
from core.data import Dataset
from core.faithfulness import RANDOM_ORDERINGS, deletion_insertion, infidelity_against_random
from core.finetune import fine_tune
from core.layers import prunable_layers
from core.metrics import Evaluation, evaluate, prediction_agreement
from core.sweep_plan import (BASELINES, BIT_WIDTHS, FAITHFULNESS_METRICS, GRID_BITS, GRID_SPARSITIES,  # noqa: F401
                             SALIENCY_METRICS, SETTING_COLUMNS, SPARSITIES, Spec, SweepConfig, baseline_name,
                             baselines_for, canonical, computed_points, curve_specs, grid_specs, probe_indices,
                             seeded)

DELETION_CHUNK = 16   # probes per deletion_insertion call: 16 x 2 x (steps+1) ~ 300 images a forward,
                      # about 2x faster on LeNet-5 than one call of 64 probes (~1,150 images a forward)
FINE_TUNE_WEIGHT = 4  # progress units per fine-tune epoch (an epoch costs about 4 measured points)

Progress = Callable[[float, str], None]


def sweep_problem(originals: nn.Module | Sequence[nn.Module], data: Dataset, cfg: SweepConfig) -> str | None:
    """A message for the user when this sweep cannot be computed, else None."""
    models = [originals] if isinstance(originals, nn.Module) else list(originals)
    if len(models) != len(cfg.seeds):
        return f"The sweep needs one trained model per seed: {len(cfg.seeds)} seeds, {len(models)} models."
    if cfg.method not in methods_for(models[0]):
        return f"The method {cfg.method!r} does not apply to this model (Grad-CAM needs a convolution layer)."
    if cfg.probe_size < 1 or len(probe_indices(data.y_test, cfg.probe_size)) == 0:
        return "The probe set is empty: choose at least one probe image (and a data set with test images)."
    return None


def tradeoff_sweep(original: nn.Module | Sequence[nn.Module], data: Dataset, cfg: SweepConfig,
                   progress: Progress | None = None, workers: int = 2) -> pd.DataFrame:
    """Every trade-off curve (all metrics, one row per point x seed; columns in the module docstring).

    original: one trained model, or one per seed of `cfg.seeds` (trained with
    TrainConfig(seed=s)); they are only read. progress(fraction, message) is called on
    the calling thread. With fine_tune_epochs > 0 every curve comes twice (fine_tuned
    False and True). Raises ValueError with `sweep_problem`'s message when it cannot run.
    """
    return _sweep(original, data, cfg, curve_specs(cfg), True, progress, workers)


def grid_sweep(original: nn.Module | Sequence[nn.Module], data: Dataset, cfg: SweepConfig,
               progress: Progress | None = None, workers: int = 2) -> pd.DataFrame:
    """The sparsity x bits map for the sidebar's pruning method: grid_sparsities x grid_bits rows per seed.

    Accuracy, agreement and saliency agreement only (faithfulness columns are NaN).
    Fine-tuned (only) when cfg.fine_tune_epochs > 0. Same arguments as `tradeoff_sweep`.
    """
    return _sweep(original, data, cfg, grid_specs(cfg), False, progress, workers)


@dataclass(frozen=True, eq=False)
class _Reference:
    """What every point of one seed is compared with: the original's predictions and maps."""

    model: nn.Module
    evaluation: Evaluation
    probes: Tensor   # (P, C, H, W)
    target: Tensor   # (P,) the original's predicted classes
    maps: Tensor     # (P, H, W)


def _sweep(original, data: Dataset, cfg: SweepConfig, specs: list[Spec], full: bool,
           progress: Progress | None, workers: int) -> pd.DataFrame:
    if problem := sweep_problem(original, data, cfg):
        raise ValueError(problem)
    models = [original] if isinstance(original, nn.Module) else list(original)
    report = progress or (lambda fraction, message: None)
    probes = data.x_test[torch.as_tensor(probe_indices(data.y_test, cfg.probe_size))]
    refs = [_reference(m, data, probes, cfg.method) for m in models]
    keys = {(i, s): canonical(i, seeded(s.cfg, cfg, i), s.fine_tuned) for i in range(len(models)) for s in specs}
    points = list(dict.fromkeys(keys.values()))
    tunes = list(dict.fromkeys((i, replace(c, weight_bits=32)) for i, c, ft in points if ft))
    units = len(points) + FINE_TUNE_WEIGHT * cfg.fine_tune_epochs * len(tunes)
    done = [0]

    def tick(weight: int, message: str) -> None:
        done[0] += weight
        report(done[0] / units, message)

    if tunes:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # first Adam costs ~2 s (lazy imports): not in a worker
    tuned = _parallel(lambda t: _fine_tuned(refs[t[0]].model, t[1], data, cfg, cfg.seeds[t[0]]), tunes, workers,
                      lambda k: tick(FINE_TUNE_WEIGHT * cfg.fine_tune_epochs, f"fine-tuned {k}/{len(tunes)}"))
    tuned = dict(zip(tunes, tuned))

    def measure(point: tuple) -> dict:
        i, ccfg, ft = point
        model = _quantized(tuned[(i, replace(ccfg, weight_bits=32))], ccfg) if ft else compress(refs[i].model, ccfg)
        return _measure(model, refs[i], data, cfg, full)

    results = dict(zip(points, _parallel(measure, points, workers,
                                         lambda k: tick(1, f"measured {k}/{len(points)} settings"))))
    rows = [_row(spec, cfg.seeds[i], results[keys[(i, spec)]]) for i in range(len(models)) for spec in specs]
    return pd.DataFrame(rows)


def _reference(model: nn.Module, data: Dataset, probes: Tensor, method: str) -> _Reference:
    ev = evaluate(model, data.x_test, data.y_test)
    with torch.no_grad():  # not inference_mode: the targets go into autograd (attribution) later
        target = model(probes).argmax(1)
    return _Reference(model, ev, probes, target, attribute(model, probes, target, method))


def _fine_tuned(model: nn.Module, prune_cfg: CompressionConfig, data: Dataset, cfg: SweepConfig,
                seed: int) -> nn.Module:
    """compress_fine_tuned's first half (prune, fine-tune with the mask fixed), shared across bit widths."""
    return fine_tune(compress(model, prune_cfg), data.x_train, data.y_train, cfg.fine_tune_epochs,
                     lr=cfg.fine_tune_lr, seed=seed)


def _quantized(tuned: nn.Module, ccfg: CompressionConfig) -> nn.Module:
    """compress_fine_tuned's second half: quantize (a copy of) the fine-tuned model; zeros stay zero."""
    return compress(tuned, replace(ccfg, prune_amount=0.0)) if ccfg.quantized else tuned


def _parallel(fn: Callable, items: list, workers: int, done: Callable[[int], None]) -> list:
    """[fn(item) for item in items] on `workers` threads; `done(k)` runs on the calling thread."""
    if workers <= 1 or len(items) <= 1:
        out = []
        for item in items:
            out.append(fn(item))
            done(len(out))
        return out
    results: list = [None] * len(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, item): k for k, item in enumerate(items)}
        try:
            for k, future in enumerate(as_completed(futures), 1):
                results[futures[future]] = future.result()
                done(k)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def _measure(model: nn.Module, ref: _Reference, data: Dataset, cfg: SweepConfig, full: bool) -> dict:
    """Every metric of one compressed model against its seed's original."""
    ev = evaluate(model, data.x_test, data.y_test)
    maps = attribute(model, ref.probes, ref.target, cfg.method)
    agreement = saliency_agreement(maps, ref.maps)
    out = {"sparsity": _sparsity(model), "accuracy": ev.accuracy,
           "agreement": prediction_agreement(ev, ref.evaluation)}
    for name in SALIENCY_METRICS:
        out[f"{name}_mean"] = float(agreement[name].mean())
        out[f"{name}_std"] = float(agreement[name].std(correction=0))
    out["degenerate"] = int(agreement["degenerate"].sum())
    out.update(_faithfulness(model, ref, maps, cfg) if full else dict.fromkeys(FAITHFULNESS_METRICS, math.nan))
    return out


def _faithfulness(model: nn.Module, ref: _Reference, maps: Tensor, cfg: SweepConfig) -> dict:
    """Deletion/insertion AUCs with their random-ordering chance levels; infidelity for signed maps only."""
    chunks = [deletion_insertion(model, x, m, t, steps=cfg.deletion_steps, random_orderings=RANDOM_ORDERINGS)
              for x, m, t in zip(ref.probes.split(DELETION_CHUNK), maps.split(DELETION_CHUNK),
                                 ref.target.split(DELETION_CHUNK))]
    out = {f"{name}{suffix}": float(torch.cat([c[f"{name}{key}"] for c in chunks]).mean())
           for name in ("deletion", "insertion")
           for suffix, key in (("_gain", "_gain"), ("_auc", ""), ("_random_auc", "_random"))}
    out.update(infidelity_gain=math.nan, infidelity=math.nan, infidelity_random=math.nan)
    if is_signed(cfg.method):  # an absolute-value map cannot predict signed changes: NaN, not offered
        fid = infidelity_against_random(model, ref.probes, maps, ref.target, n_samples=cfg.infidelity_samples)
        out.update(infidelity_gain=fid["infidelity_gain"], infidelity=float(fid["infidelity"].mean()),
                   infidelity_random=float(fid["infidelity_random"].mean()))
    return {name: out[name] for name in FAITHFULNESS_METRICS}


def _sparsity(model: nn.Module) -> float:
    weights = [m.weight.detach() for _, m in prunable_layers(model)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def _row(spec: Spec, seed: int, result: dict) -> dict:
    c = spec.cfg
    return {"curve": spec.curve, "baseline": spec.baseline, "matches_sidebar": spec.matches_sidebar,
            "seed": seed, "prune_method": c.prune_method, "prune_scope": c.prune_scope,
            "prune_amount": float(c.prune_amount), "weight_bits": c.weight_bits, "quant_scheme": c.quant_scheme,
            "quant_granularity": c.quant_granularity, "fine_tuned": spec.fine_tuned, **result}


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds, one row per point (a new DataFrame).

    For each metric m: column m (mean over seeds) and m_std (sample std over seeds; 0 with
    one seed). Saliency metrics m in SALIENCY_METRICS also get m_probe_std, the spread over
    probe images (mean over seeds). n_seeds counts the seeds.
    """
    work = df.copy()
    for name in SALIENCY_METRICS:
        work[name], work[f"{name}_probe_std"] = work[f"{name}_mean"], work[f"{name}_std"]
    values = ["accuracy", "agreement", "sparsity", *SALIENCY_METRICS, *FAITHFULNESS_METRICS, "degenerate"]
    spread = [f"{name}_probe_std" for name in SALIENCY_METRICS]
    groups = work.groupby(list(SETTING_COLUMNS), sort=False, dropna=False)
    mean = groups[values + spread].mean()
    std = groups[values].std(ddof=1)
    # One seed has no spread (0, not pandas' NaN); metrics a sweep skipped stay NaN.
    std = std.mask(std.isna() & mean[values].notna(), 0.0).add_suffix("_std")
    return pd.concat([mean, std, groups["seed"].nunique().rename("n_seeds")], axis=1).reset_index()
