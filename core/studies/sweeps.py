"""Sweeps over compression settings: how accuracy and explanations change with sparsity and bits.

The unit of work is one pruning method's **table** (`measure_table`): every sparsity x
every bit width of `core.studies.sweep_plan` (whose names are re-exported here), per seed. A
compressed model at (sparsity s, bits b) is quantize(prune(model, s), b), so each
sparsity is pruned (and fine-tuned) once and then quantized per bit width; a bit width
that leaves the pruned weights unchanged (all zero at 100 %) reuses the measurement.
The originals' references (their predictions and maps) are computed once per seed and
can be passed in. Sparsity rows run on worker threads (torch frees the GIL in its
kernels) or as Ray tasks (core.studies.executor); every call into the models is batched. Inputs are never modified: `compress`
and `fine_tune` work on copies, attribution is side-effect free.

Every map, original or compressed, explains the ORIGINAL model's predicted class of the
probe image (as the saliency page does), so maps are comparable and the faithfulness
scores (deletion/insertion AUC, infidelity) use that same class.

Columns of a table (one row per cell x seed): seed, the CompressionConfig fields of
sweep_plan.CONFIG_COLUMNS (prune_amount, prune_method, prune_scope, weight_bits,
quant_scheme, quant_granularity, ...), fine_tuned, then
  sparsity            measured share of exactly-zero prunable weights (after quantization)
  accuracy            on the full test set; agreement: share of test predictions equal to the original's
  {spearman_abs, spearman, topk, ssim}_{mean, std}  saliency agreement with the original's
                      maps, mean and population std over the probe images
  degenerate          number of probes whose map (or the original's) is constant on the pixels where
                      either is nonzero (rank correlations there are 1 or 0 by definition, core.explain.agreement)
  deletion_gain, insertion_gain, infidelity_gain  faithfulness of the compressed model's own maps
                      over chance (core.explain.faithfulness): how much better than random pixel orderings
                      (random maps for infidelity) the map does, 0 = chance; means over the probes
  deletion_auc, deletion_random_auc, insertion_auc, insertion_random_auc  the raw AUCs of the maps
                      and of random orderings of the same images on the same model
  infidelity, infidelity_random  normalized infidelity of the maps and of random maps, for signed
                      methods only (NaN for saliency, SmoothGrad, Grad-CAM); faithfulness columns
                      are NaN where not measured (only along the curves the page shows)
  sparseness, complexity, sensitivity and each with _random  explanation quality of the compressed
                      model's own maps (core.explain.quality): Gini index and entropy of |map|,
                      max-sensitivity (on cfg.sensitivity_images of the probes); beside them a random map's
                      value; means over the probes, measured
                      with the faithfulness columns (only along the curves), NaN elsewhere
Curves (`curve_rows`, `tradeoff_sweep`; also the downloadable CSV) add curve ("sparsity" |
"bits" | "reference" | "current"), baseline and matches_sidebar.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import pandas as pd
import torch
from torch import Tensor, nn

from core.explain.attribution import attribute, is_signed, methods_for, saliency_agreement
from core.compression import CompressionConfig, compress
from core.data import Dataset
from core.explain.faithfulness import RANDOM_ORDERINGS, deletion_insertion, infidelity_against_random
from core.compression.finetune import fine_tune
from core.layers import prunable_layers, stored_layers
from core.metrics import Evaluation, evaluate, prediction_agreement
from core.explain import quality
from core.studies.executor import run_tasks, run_threads as parallel  # noqa: F401  (parallel: threads only)
from core.studies.sweep_plan import (BASELINES, BIT_WIDTHS, CONFIG_COLUMNS, CURVE_METRICS,  # noqa: F401
                             FAITHFULNESS_METRICS, GRID_BITS, QUALITY_METRICS, GRID_SPARSITIES, SALIENCY_METRICS, SETTING_COLUMNS, SPARSITIES,
                             SweepConfig, baseline_name, baselines_for, current_rows, curve_rows, nearest_sparsity,
                             probe_indices, seeded, slice_cells, table_cells, table_config, table_plan)

DELETION_CHUNK = 16   # probes per deletion_insertion call: 16 x 2 x (steps+1) ~ 300 images a forward,
                      # about 2x faster on LeNet-5 than one call of 64 probes (~1,150 images a forward)
FINE_TUNE_WEIGHT = 4  # progress units per fine-tune epoch (an epoch costs about 4 measured points)

Progress = Callable[[float, str], None]
Cells = Sequence[tuple[float, int]]


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


@dataclass(frozen=True, eq=False)
class _Reference:
    """What every point of one seed is compared with: the original's predictions and maps."""

    model: nn.Module
    evaluation: Evaluation
    probes: Tensor   # (P, C, H, W)
    target: Tensor   # (P,) the original's predicted classes
    maps: Tensor     # (P, H, W)


def _models(original: nn.Module | Sequence[nn.Module]) -> list[nn.Module]:
    return [original] if isinstance(original, nn.Module) else list(original)


def references(original: nn.Module | Sequence[nn.Module], data: Dataset, cfg: SweepConfig) -> list[_Reference]:
    """One reference per seed (evaluation, probes, targets, maps of the original): shared by every table.

    Depends only on the models, the data, cfg.probe_size and cfg.method. Raises ValueError
    with `sweep_problem`'s message when the sweep cannot run.
    """
    if problem := sweep_problem(original, data, cfg):
        raise ValueError(problem)
    probes = data.x_test[torch.as_tensor(probe_indices(data.y_test, cfg.probe_size))]
    return [_reference(m, data, probes, cfg.method) for m in _models(original)]


def method_table(original: nn.Module | Sequence[nn.Module], data: Dataset, cfg: SweepConfig,
                 progress: Progress | None = None, workers: int = 2, refs: list | None = None) -> pd.DataFrame:
    """One method's whole table: every cfg.sparsities x cfg.bit_widths cell per seed, without faithfulness.

    cfg.base gives the method, scope and every other setting (its amount and bits are
    ignored); fine-tuned rows when cfg.fine_tune_epochs > 0. See `measure_table`.
    """
    return measure_table(original, data, cfg, table_cells(cfg), False, progress, workers, refs)


def measure_table(original: nn.Module | Sequence[nn.Module], data: Dataset, cfg: SweepConfig, cells: Cells,
                  full: bool = False, progress: Progress | None = None, workers: int = 2,
                  refs: list | None = None) -> pd.DataFrame:
    """The rows of `cells` ((sparsity, bits) pairs) at cfg.base's other settings, per seed (module docstring).

    original: one trained model, or one per seed of `cfg.seeds` (trained with
    TrainConfig(seed=s)); they are only read. full: also the faithfulness columns.
    Fine-tuned (mask held fixed, then quantized) when cfg.fine_tune_epochs > 0.
    progress(fraction, "k of n settings") is called on the calling thread. refs: from
    `references` (computed here when None). Raises ValueError when the sweep cannot run.
    """
    models = _models(original)
    refs = references(models, data, cfg) if refs is None else refs
    report = progress or (lambda fraction, message: None)
    tuned = cfg.fine_tune_epochs > 0
    rows_of = {}
    for amount, bits in cells:
        rows_of.setdefault(float(amount), []).append(int(bits))
    tasks = [(i, a, b) for i in range(len(models)) for a, b in rows_of.items()]
    total = sum(len(b) for _, _, b in tasks)
    fine_units = FINE_TUNE_WEIGHT * cfg.fine_tune_epochs if tuned else 0
    units = total + fine_units * sum(1 for _, a, _ in tasks if a > 0)
    done, measured = [0], [0]
    if tuned:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # first Adam costs ~2 s (lazy imports): not in a worker

    def tick(k: int) -> None:
        _, amount, bits = tasks[k]
        measured[0] += len(bits)
        done[0] += len(bits) + (fine_units if amount > 0 else 0)
        report(done[0] / units, f"{measured[0]} of {total} settings")

    results = run_tasks(_run_row, tasks, workers, tick, shared=(models, refs, data, cfg, full))
    return pd.DataFrame([row for rows in results for row in rows])


def _run_row(models: list[nn.Module], refs: list, data: Dataset, cfg: SweepConfig, full: bool,
             task: tuple) -> list[dict]:
    """One task of `measure_table` (module level, so it can be shipped to Ray): one sparsity row of one seed."""
    i, amount, bits = task
    return _measure_row(models[i], refs[i], data, cfg, i, amount, bits, full)


def _measure_row(model: nn.Module, ref: _Reference, data: Dataset, cfg: SweepConfig, seed_index: int,
                 amount: float, bits: list[int], full: bool) -> list[dict]:
    """Prune (and fine-tune) once at `amount`, then quantize and measure at each of `bits`."""
    tuned = cfg.fine_tune_epochs > 0 and amount > 0
    pruned_cfg = seeded(replace(cfg.base, prune_amount=amount, weight_bits=32), cfg, seed_index)
    pruned = (_fine_tuned(model, pruned_cfg, data, cfg, cfg.seeds[seed_index]) if tuned
              else compress(model, pruned_cfg))
    rows, plain = [], None
    for b in sorted(bits, key=lambda b: b != 32):  # 32 first: lower bit widths may coincide with it
        ccfg = replace(pruned_cfg, weight_bits=b)
        compressed = _quantized(pruned, ccfg)
        if b != 32 and plain is not None and _same_weights(compressed, pruned):
            result = plain  # e.g. 100 % unstructured: nothing left to quantize
        else:
            result = measure_point(compressed, ref, data, cfg, full)
        plain = result if b == 32 else plain
        rows.append({"seed": cfg.seeds[seed_index], **_settings(ccfg), "fine_tuned": cfg.fine_tune_epochs > 0,
                     **result})
    return sorted(rows, key=lambda r: bits.index(r["weight_bits"]))


def _settings(ccfg: CompressionConfig) -> dict:
    values = asdict(ccfg)
    return {k: (float(values[k]) if k == "prune_amount" else values[k]) for k in CONFIG_COLUMNS}


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x.weight, y.weight) for (_, x), (_, y) in zip(prunable_layers(a), prunable_layers(b)))


def tradeoff_sweep(original: nn.Module | Sequence[nn.Module], data: Dataset, cfg: SweepConfig,
                   progress: Progress | None = None, workers: int = 2, full: bool = True) -> pd.DataFrame:
    """Every trade-off curve through cfg.base, as slices of the tables of `table_plan` (curve_rows' columns).

    Measures each table (`method_table`), then, with `full`, the faithfulness of the
    cells the curves use. Without a UI in between this is what the Trade-offs page shows.
    progress(fraction, message) is per table. Raises ValueError when the sweep cannot run.
    """
    models = _models(original)
    refs = references(models, data, cfg)
    report = progress or (lambda fraction, message: None)
    plan = table_plan(cfg)
    tables = {}
    for k, (key, table) in enumerate(plan.items()):
        rows = method_table(models, data, table, lambda f, m: report((k + f) / len(plan), m), workers, refs)
        if full:
            faith = measure_table(models, data, table, slice_cells(replace(table, base=cfg.base)), True,
                                  workers=workers, refs=refs)
            rows = with_faithfulness(rows, faith)
        tables[key] = rows
    own = next(iter(plan.values()))
    current = current_rows(tables[next(iter(plan))], cfg)
    if current is None or (full and current[list(CURVE_METRICS)].isna().any(axis=None)):
        current = measure_table(models, data, own, [(cfg.base.prune_amount, cfg.base.weight_bits)], full,
                                workers=workers, refs=refs)
    return curve_rows(tables, cfg, current)


def with_faithfulness(table: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """`table` with its faithfulness and quality columns (CURVE_METRICS) from `measured` rows (same cells) where they exist."""
    keys = ["seed", "prune_amount", "weight_bits", "fine_tuned"]
    extra = measured[keys + list(CURVE_METRICS)]
    merged = table.drop(columns=list(CURVE_METRICS)).merge(extra, on=keys, how="left")
    return merged[list(table.columns)]


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
    rest = ccfg.split("prune")[1]  # every step after pruning (the ones before were applied with it)
    return compress(tuned, rest) if rest.pipeline() else tuned


def measure_point(model: nn.Module, ref: _Reference, data: Dataset, cfg: SweepConfig, full: bool) -> dict:
    """Every metric of one compressed model against its seed's original (`references` gives `ref`)."""
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
    out.update(_quality(model, ref, maps, cfg) if full else dict.fromkeys(QUALITY_METRICS, math.nan))
    return out


def _quality(model: nn.Module, ref: _Reference, maps: Tensor, cfg: SweepConfig) -> dict:
    """Sparseness, complexity and max-sensitivity of the maps, each beside a random map's (means over probes)."""
    measured = quality.measure(model, ref.probes, ref.target, cfg.method, maps=maps, samples=cfg.sensitivity_samples,
                               faithfulness=False, sensitivity_images=cfg.sensitivity_images)
    means = quality.summary(measured)
    return {name: means[name] for name in QUALITY_METRICS}


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
    weights = [m.weight.detach() for _, m in stored_layers(model)]  # the factors of a low-rank layer
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds, one row per point (a new DataFrame).

    For each metric m: column m (mean over seeds) and m_std (sample std over seeds; 0 with
    one seed). Saliency metrics m in SALIENCY_METRICS also get m_probe_std, the spread over
    probe images (mean over seeds). n_seeds counts the seeds.
    """
    work = df.copy()
    for name in SALIENCY_METRICS:
        work[name], work[f"{name}_probe_std"] = work[f"{name}_mean"], work[f"{name}_std"]
    values = ["accuracy", "agreement", "sparsity", *SALIENCY_METRICS, *CURVE_METRICS, "degenerate"]
    spread = [f"{name}_probe_std" for name in SALIENCY_METRICS]
    groups = work.groupby(list(SETTING_COLUMNS), sort=False, dropna=False)
    mean = groups[values + spread].mean()
    std = groups[values].std(ddof=1)
    # One seed has no spread (0, not pandas' NaN); metrics a sweep skipped stay NaN.
    std = std.mask(std.isna() & mean[values].notna(), 0.0).add_suffix("_std")
    return pd.concat([mean, std, groups["seed"].nunique().rename("n_seeds")], axis=1).reset_index()
