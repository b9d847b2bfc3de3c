"""Which layers decide it: every prunable layer compressed ALONE, the rest dense.

For each layer of `core.layers.prunable_layers` and each setting (pruned at one of
`cfg.rates`, or quantized at one of `cfg.bits`), the model with only that layer compressed
is measured as the sweeps measure a model (`core.studies.sweeps`): accuracy on the full test
set, prediction agreement with the original, and explanation agreement (the original's
probe set and maps from `sweeps.references`, compared by `saliency_agreement`). Plus the
layer's quantization error as SQNR = 10 log10(||s||^2 / ||s - s_hat||^2) in dB, of its
weights and of its output on the first ACTIVATION_IMAGES test images (dense vs compressed
layer, the layers before it dense). An exact compression has infinite SQNR (inf, shown as
"exact"), never NaN.

One layer is compressed by `core.compression.compress` itself (`compress_layer`): the layer
(a copy) alone, pruned layer-wise at the rate and then quantized, with the other settings of
`cfg.base` (method, scheme, granularity, range, seed). Pruning one layer alone at rate r is
what the sidebar's "layer" scope does to every layer; its "global" scope has no meaning for
one layer. Structured pruning never removes the classes' units, so it does not apply to the
last layer (rows with applicable False and NaN metrics).

Batching (core/studies/layer_runs.py; every number the same as measuring each one-layer model on its
own, bit for bit, but the maps' last step back noted below: tests/test_sensitivity_batch.py). On an
nn.Sequential whose layer is a top-level child (lenet5, lenet300, mlp, mlp32, separable), the original's
input to every layer is computed once per analysis on the test set (by the first task that needs it), and
each setting runs only the compressed layer and the layers after it; the layer's output for the activation
SQNR comes out of that pass (the clean output's power once per layer), 2x2 max poolings run as strided
maxima with the ReLU before them moved after them (`layer_runs.fast_chain`: the same numbers), and a
convolution's settings run it and the convolutions, poolings and ReLUs after it on oneDNN tensors
(`core.fast_inference.onednn_parts`: one layout reorder per chain instead of two per call, checked bit for bit
once per shape; conv1's 8 settings on the test set 245 -> 218 ms CPU, conv2's 101 -> 85). Saliency
and Gradient x Input maps run the layers before forward once on the probes and send each setting's
gradient back through that shared graph (`layer_runs.gradient_maps`: Captum's numbers); when the model
starts with a plain convolution (lenet5), the last step back, its input gradient, is a forward convolution
with the flipped weight (`layer_runs.input_gradient`: oneDNN's input gradient of LeNet-5's one-channel conv1
took 5.2 ms per 64 probes, this 1.3 ms; the maps move by at most 4e-7 of their largest value, the table's
mean rank correlations by at most 2e-7 and its SSIM by 6e-8, below the 2 decimals the page shows). Other
methods take one Captum call per setting on one private copy. resnet_small's layers sit inside residual blocks whose skip
connection goes around them: it takes the whole-model path (one copy per setting). The settings' maps are
compared in one call per task with the original's maps prepared once per analysis (`agreement.reference_of`:
ranks, top-k, SSIM statistics). Stacking the settings instead (one conv with 8 x 6 filters for
conv1's settings, a grouped conv or a batch of 8 x 256 for conv2's, torch.vmap over the backward of 8
gradients) was measured slower on this CPU (conv1: 33 ms vs 8 x 2.2 ms; conv2: 3.6 vs 1.4 ms per setting;
conv1's input gradient for 8 x 64 probes: 46 ms in one call, 31 ms in eight; the flipped convolution too:
10 ms for 256 probes, 1.9 ms for 64), and so were smaller chunks for the convolutions (LeNet-5's conv1 chain:
4.6 ms per 256 images at once, 5.1 ms in chunks of 64): the work is arithmetic, not call overhead. Tasks
run on worker threads (torch frees the GIL in its kernels), as the sweeps' rows are: one per layer and kind
(its rates, its bit widths), in layer order, the costliest first on LeNet-5 (conv1's 0.18 s each, fc3's
0.04 s), so two workers end within a task of fc3 of each other (one task per layer left one worker alone
with conv1: 0.98 s on 2 workers against 1.06 on 1). Measured (benchmarks/bench_sensitivity.py, medians, same
window): 0.61 -> 0.49 s on 2 workers, 1.12 -> 0.90 s on 1; the naive loop of the same work 2.6 s: 5.3x on 2.
Inputs are never modified: every compressed layer is a copy.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor, nn

from core.compression import CompressionConfig, compress
from core.data import Dataset
from core.explain.agreement import Reference, agreement_with_reference, reference_of
from core.explain.attribution import attribute
from core.compression.plan import compress_layer  # noqa: F401  (one layer compressed alone: shared with the plan step)
from core.layers import layer_keys, layer_labels, prunable_layers  # noqa: F401  (layer_keys: used by callers)
from core.metrics import FP32_BITS, weight_storage_bits
from core.studies.sweep_plan import SALIENCY_METRICS, SweepConfig
from core.studies.executor import run_tasks
from core.studies.layer_runs import (ACTIVATION_IMAGES, CHUNK, SharedInputs, gradient_maps, layer_inputs,  # noqa: F401
                                     outcomes, sqnr_db)
from core.studies.sweeps import references, sweep_problem

RATES = (0.5, 0.8, 0.9, 0.95)
BITS = (8, 4, 3, 2)
METRICS = ("accuracy", "agreement", *SALIENCY_METRICS)
KINDS = ("prune", "quantize")

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SensitivityConfig:
    """What the analysis measures; frozen, so it is a safe cache key (pass `neutral(base)`)."""

    base: CompressionConfig = CompressionConfig()  # method, scheme, granularity, range, seed of one layer's compression
    method: str = "saliency"                       # attribution method of the maps
    probe_size: int = 64                           # class-stratified probe images (as the sweeps)
    rates: tuple[float, ...] = RATES
    bits: tuple[int, ...] = BITS

    def __post_init__(self) -> None:
        if not all(0.0 < r <= 1.0 for r in self.rates) or not all(1 <= b <= 8 for b in self.bits):
            raise ValueError("rates must lie in (0, 1] and bit widths in 1..8")

    @property
    def sweep(self) -> SweepConfig:
        """The SweepConfig whose references (probes, maps) this analysis compares with."""
        return SweepConfig(method=self.method, probe_size=self.probe_size)


def neutral(base: CompressionConfig) -> CompressionConfig:
    """`base` without what a per-layer setting replaces (rate, bits, scope, a plan already applied): one key
    for every slider position."""
    return replace(base, prune_amount=0.0, weight_bits=32, prune_scope="layer", layer_plan="")


def structured_applies(model: nn.Module, name: str, base: CompressionConfig) -> bool:
    """False for structured pruning of the last prunable layer (its units are the classes)."""
    return base.prune_method != "structured" or name != prunable_layers(model)[-1][0]


def with_weight(model: nn.Module, name: str, weight: Tensor) -> nn.Module:
    """A deep copy of `model` whose prunable layer `name` has `weight`; every other tensor bit-identical."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        dict(prunable_layers(twin))[name].weight.copy_(weight)
    return twin


def settings(cfg: SensitivityConfig) -> list[tuple[str, float, int, str]]:
    """The columns of the table in order: (kind, rate, bits, label), e.g. ("prune", 0.5, 32, "prune 50 %")."""
    prune = [("prune", float(r), 32, f"prune {round(100 * r)} %") for r in cfg.rates]
    quant = [("quantize", 0.0, int(b), f"{b} bit{'s' if b > 1 else ''}") for b in cfg.bits]
    return prune + quant


def analysis_problem(model: nn.Module, data: Dataset, cfg: SensitivityConfig) -> str | None:
    """A message for the user when the analysis cannot run, else None."""
    if not prunable_layers(model):
        return "This model has no Linear or Conv2d layer to compress."
    return sweep_problem(model, data, cfg.sweep)


def sensitivity_table(model: nn.Module, data: Dataset, cfg: SensitivityConfig, progress: Progress | None = None,
                      workers: int = 2, refs: list | None = None) -> pd.DataFrame:
    """One row per prunable layer x setting (module docstring); the model and data are only read.

    Columns: layer (module name), key ("conv1"), label ("conv 1 (6×1×5×5)"), kind ("prune" |
    "quantize"), setting (its label), prune_amount, weight_bits, applicable, layer_sparsity,
    layer_size_bits (the layer's weight in `weight_storage_bits`' cheapest code, plus its fp32
    bias), accuracy, agreement, {spearman_abs, spearman, topk, ssim} (means over the probes),
    degenerate, weight_sqnr_db, activation_sqnr_db. attrs: original_accuracy, n_test, n_probes,
    method. refs: `sweeps.references(model, data, cfg.sweep)` (computed when None).
    progress(fraction, message) is called on the calling thread once per layer and kind.
    """
    if problem := analysis_problem(model, data, cfg):
        raise ValueError(problem)
    ref = (references(model, data, cfg.sweep) if refs is None else refs)[0]
    names = [name for name, _ in prunable_layers(model)]
    report = progress or (lambda fraction, message: None)
    labels = layer_labels(model)
    # One task per layer and kind (its pruning rates, its bit widths), in layer order: on LeNet-5 the first
    # layers cost the most (their settings run every layer after them on the test set), so two workers
    # taking tasks in this order end together; one task per layer left one worker alone with conv1.
    tasks = [(name, kind) for name in names for kind in KINDS if any(c[0] == kind for c in settings(cfg))]
    done = [0]

    def tick(k: int) -> None:
        done[0] += 1
        name, kind = tasks[k]
        report(done[0] / len(tasks), f"{done[0]} of {len(tasks)} parts ({labels[name].split(' (')[0]}, "
                                     f"{'pruning' if kind == 'prune' else 'quantization'} done)")

    # The original's input to every layer, once for all layers (models layer_runs.split handles), computed by
    # the first task that needs it.
    inputs = SharedInputs(model, names, data.x_test)
    shared = (model, ref, reference_of(ref.maps), data, cfg, inputs)  # the original's maps prepared once
    rows = run_tasks(_layer_rows, tasks, workers, tick, shared=shared)
    table = pd.DataFrame([row for layer in rows for row in layer])
    table.attrs.update(original_accuracy=ref.evaluation.accuracy, n_test=len(data.y_test),
                       n_probes=len(ref.probes), method=cfg.method)
    return table


def _layer_rows(model: nn.Module, ref, original: Reference, data: Dataset, cfg: SensitivityConfig, inputs: SharedInputs,
                task: tuple[str, str]) -> list[dict]:
    """The settings of one kind of one layer: compress it alone, measure them, one agreement call for their maps."""
    name, kind_wanted = task
    module = dict(prunable_layers(model))[name]
    columns = [c for c in settings(cfg) if c[0] == kind_wanted]
    ok = [kind != "prune" or structured_applies(model, name, cfg.base) for kind, *_ in columns]
    weights = [compress_layer(module, cfg.base, rate, bits) if fine else None
               for (kind, rate, bits, _), fine in zip(columns, ok)]
    used = [w for w in weights if w is not None]
    labels = torch.as_tensor(data.y_test).long()
    predicted = torch.from_numpy(ref.evaluation.predictions.copy())  # the cached evaluation's array is read-only
    scores = outcomes(model, name, used, data.x_test, labels, predicted, inputs.get(name))
    maps = _maps(model, name, used, ref, cfg.method) if used else None
    agreement = agreement_with_reference(maps, original) if used else {}
    key, label = layer_keys(model)[name], layer_labels(model)[name]
    rows, k, probes = [], 0, len(ref.probes)
    for (kind, rate, bits, text), weight in zip(columns, weights):
        row = {"layer": name, "key": key, "label": label, "kind": kind, "setting": text,
               "prune_amount": rate, "weight_bits": bits, "applicable": weight is not None}
        if weight is None:
            rows.append({**row, **dict.fromkeys(["layer_sparsity", "layer_size_bits", *METRICS, "degenerate",
                                                 "weight_sqnr_db", "activation_sqnr_db"], math.nan)})
            continue
        part = slice(k * probes, (k + 1) * probes)
        row.update(layer_sparsity=float((weight == 0).float().mean()),
                   layer_size_bits=layer_size_bits(module, weight, bits, cfg.base), **scores[k],
                   **{m: float(agreement[m][part].mean()) for m in SALIENCY_METRICS},
                   degenerate=int(agreement["degenerate"][part].sum()),
                   weight_sqnr_db=sqnr_db(module.weight, weight))
        rows.append(row)
        k += 1
    return rows


def _maps(model: nn.Module, name: str, weights: list[Tensor], ref, method: str) -> Tensor:
    """Maps of the probes by the model with each of `weights` in layer `name`, (K * P, H, W), in order.

    Saliency and Gradient x Input on a layer `layer_runs.split` handles: the layers before run once
    (`gradient_maps`, the same numbers as Captum's). Otherwise one private copy of the model takes each
    weight in turn, one Captum call each (attribution leaves nothing on it).
    """
    if (maps := gradient_maps(model, name, weights, ref.probes, ref.target, method)) is not None:
        return maps
    twin = copy.deepcopy(model)
    layer = dict(prunable_layers(twin))[name]
    maps = []
    for weight in weights:
        with torch.no_grad():
            layer.weight.copy_(weight)
        maps.append(attribute(twin, ref.probes, ref.target, method))
    return torch.cat(maps)


def layer_size_bits(module: nn.Module, weight: Tensor, bits: int, base: CompressionConfig) -> int:
    """Storage of the layer as core.metrics counts it: the weight's cheapest code plus the fp32 bias."""
    bias = getattr(module, "bias", None)
    return weight_storage_bits(weight, bits, base.quant_scheme, base.quant_granularity, base.quant_range) \
        + FP32_BITS * (0 if bias is None else bias.numel())
