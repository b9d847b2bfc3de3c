"""core/studies/sensitivity.py as it was before the layers' inputs were shared (commit 7e8f59b), kept
unchanged to test that the faster analysis gives the same table (tests/test_sensitivity_batch.py). Its
whole-model path (models that are not nn.Sequential, such as resnet_small) replaced the layer's output by
the first chunk's through its forward hook, so it is compared only on the nn.Sequential models.

Which layers decide it: every prunable layer compressed ALONE, the rest dense.

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

Batching. Per layer, the layers before it run once on the test set (their output is the same
for every setting); each setting then runs only the compressed layer and the layers after it
(models that are not nn.Sequential, or layers nested deeper, fall back to whole-model
evaluation). The layer's output for the activation SQNR comes out of that same pass, and 2x2 max
pooling runs as strided maxima there (`MaxPool2x2`: the same numbers, 10x faster than torch's CPU
kernel on these shapes). All the settings' maps are compared in one call that ranks the original's
maps once (`agreement.agreement_with_reference`: the same numbers as pairwise comparisons). The maps themselves are one Captum
call per setting on one private copy: putting several settings' probes through one call saves
nothing on these models (measured: 8 x 64 probes in one saliency call 85 ms, 8 calls of 64 probes
64 ms; the work is arithmetic, not call overhead). Layers are measured on worker
threads (torch frees the GIL in its kernels), as the sweeps' rows are. Inputs are never
modified: every compressed model is a copy.
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
from core.explain.agreement import agreement_with_reference
from core.explain.attribution import attribute
from core.compression.plan import compress_layer  # noqa: F401  (one layer compressed alone: shared with the plan step)
from core.layers import layer_keys, layer_labels, prunable_layers  # noqa: F401  (layer_keys: used by callers)
from core.metrics import FP32_BITS, weight_storage_bits
from core.studies.sweep_plan import SALIENCY_METRICS, SweepConfig
from core.studies.executor import run_tasks
from core.studies.sweeps import references, sweep_problem

RATES = (0.5, 0.8, 0.9, 0.95)
BITS = (8, 4, 3, 2)
ACTIVATION_IMAGES = 256   # test images whose layer outputs give the activation SQNR
CHUNK = 256               # rows per forward, as core.metrics.evaluate (same chunks: same numbers)
METRICS = ("accuracy", "agreement", *SALIENCY_METRICS)

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


def sqnr_db(signal: Tensor, approximation: Tensor) -> float:
    """10 log10(||signal||^2 / ||signal - approximation||^2) in dB; inf when they are equal (and for 0 vs 0)."""
    s, a = signal.detach(), approximation.detach()
    # Sums of squares accumulated in float64 (no float64 copy of a whole activation batch).
    error = float(torch.linalg.vector_norm(s - a, dtype=torch.float64)) ** 2
    power = float(torch.linalg.vector_norm(s, dtype=torch.float64)) ** 2
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(power / error) if power > 0 else -math.inf


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
    progress(fraction, message) is called on the calling thread once per layer.
    """
    if problem := analysis_problem(model, data, cfg):
        raise ValueError(problem)
    ref = (references(model, data, cfg.sweep) if refs is None else refs)[0]
    names = [name for name, _ in prunable_layers(model)]
    report = progress or (lambda fraction, message: None)
    labels = layer_labels(model)
    done = [0]

    def tick(k: int) -> None:
        done[0] += 1
        report(done[0] / len(names), f"{done[0]} of {len(names)} layers ({labels[names[k]].split(' (')[0]} done)")

    rows = run_tasks(_layer_rows, names, workers, tick, shared=(model, ref, data, cfg))
    table = pd.DataFrame([row for layer in rows for row in layer])
    table.attrs.update(original_accuracy=ref.evaluation.accuracy, n_test=len(data.y_test),
                       n_probes=len(ref.probes), method=cfg.method)
    return table


def _layer_rows(model: nn.Module, ref, data: Dataset, cfg: SensitivityConfig, name: str) -> list[dict]:
    """Every setting of one layer: compress it alone, measure all settings, one agreement call for all maps."""
    module = dict(prunable_layers(model))[name]
    columns = settings(cfg)
    ok = [kind != "prune" or structured_applies(model, name, cfg.base) for kind, *_ in columns]
    weights = [compress_layer(module, cfg.base, rate, bits) if fine else None
               for (kind, rate, bits, _), fine in zip(columns, ok)]
    used = [w for w in weights if w is not None]
    outcomes = _outcomes(model, name, used, data, ref.evaluation.predictions)
    maps = _maps(model, name, used, ref, cfg.method) if used else None
    agreement = agreement_with_reference(maps, ref.maps) if used else {}  # the original's maps ranked once
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
                   layer_size_bits=layer_size_bits(module, weight, bits, cfg.base), **outcomes[k],
                   **{m: float(agreement[m][part].mean()) for m in SALIENCY_METRICS},
                   degenerate=int(agreement["degenerate"][part].sum()),
                   weight_sqnr_db=sqnr_db(module.weight, weight))
        rows.append(row)
        k += 1
    return rows


def _maps(model: nn.Module, name: str, weights: list[Tensor], ref, method: str) -> Tensor:
    """Maps of the probes by the model with each of `weights` in layer `name`, (K * P, H, W), in order.

    One private copy of the model takes each weight in turn (attribution leaves nothing on it).
    """
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


def _outcomes(model: nn.Module, name: str, weights: list[Tensor], data: Dataset, reference) -> list[dict]:
    """Per weight: accuracy, agreement with `reference` predictions and activation SQNR of layer `name`."""
    split = _split(model, name)
    labels = torch.as_tensor(data.y_test).long()
    ref = torch.from_numpy(reference.copy())  # the cached evaluation's array is read-only
    if split is None:  # not a top-level layer of an nn.Sequential: whole models, a hook for the output
        return [_outcome_whole(model, name, w, data.x_test, labels, ref) for w in weights]
    prefix, module, suffix = split
    # The weights are set on a private copy of the layer: the model is shared with other threads
    # (torch.func.functional_call would swap the shared module's weight while it runs).
    layer = copy.deepcopy(module)
    predictions = [[] for _ in weights]
    clean, noisy = None, [None] * len(weights)
    with torch.inference_mode():
        for start in range(0, len(data.x_test), CHUNK):
            inputs = prefix(data.x_test[start:start + CHUNK])  # shared by every setting of this layer
            for k, w in enumerate(weights):
                layer.weight.copy_(w)
                out = layer(inputs)
                if start == 0:
                    noisy[k] = out[:ACTIVATION_IMAGES]
                predictions[k].append(suffix(out).argmax(1))
            if start == 0:
                clean = module(inputs)[:ACTIVATION_IMAGES]
    return [_scores(torch.cat(p), labels, ref, sqnr_db(clean, n)) for p, n in zip(predictions, noisy)]


def _split(model: nn.Module, name: str) -> tuple[nn.Module, nn.Module, nn.Module] | None:
    """(layers before, the layer, layers after) when `name` is a top-level child of an nn.Sequential."""
    if not isinstance(model, nn.Sequential):
        return None
    children = list(model.named_children())
    index = next((i for i, (child, _) in enumerate(children) if child == name), None)
    if index is None:
        return None
    return (nn.Sequential(*[_fast(m) for _, m in children[:index]]), children[index][1],
            nn.Sequential(*[_fast(m) for _, m in children[index + 1:]]))


class MaxPool2x2(nn.Module):
    """nn.MaxPool2d(2) for inference, the same numbers: the larger of each 2x2 window by three torch.maximum
    of strided views. Written by hand because torch's CPU max_pool2d is slow here: on LeNet-5's first pooling
    (256 images, 6 x 28 x 28, one thread) it measured 5.7 ms, this 0.55 ms, and the pooling was half of the
    evaluation's time. A maximum is exact, so the outputs are equal (odd edges are dropped, as floor mode does).
    Inference only: where a window ties, its gradient would be split, not routed to one input."""

    def forward(self, x: Tensor) -> Tensor:
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
        rows = torch.maximum(x[..., ::2, :], x[..., 1::2, :])
        return torch.maximum(rows[..., ::2], rows[..., 1::2])


def _fast(module: nn.Module) -> nn.Module:
    """`module`, or MaxPool2x2 for a plain nn.MaxPool2d(2) (stride 2, no padding, dilation 1, floor mode)."""
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    if type(module) is nn.MaxPool2d and pair(module.kernel_size) == (2, 2) and pair(module.stride) == (2, 2) \
            and pair(module.padding) == (0, 0) and pair(module.dilation) == (1, 1) and not module.ceil_mode \
            and not module.return_indices:
        return MaxPool2x2()
    return module


def _outcome_whole(model: nn.Module, name: str, weight: Tensor, x: Tensor, labels: Tensor, ref: Tensor) -> dict:
    outputs = {}
    twin, clean = with_weight(model, name, weight), copy.deepcopy(model)
    for key, m in (("noisy", twin), ("clean", clean)):
        dict(prunable_layers(m))[name].register_forward_hook(lambda _m, _i, out, key=key: outputs.setdefault(key, out))
    with torch.inference_mode():
        clean(x[:ACTIVATION_IMAGES])
        predictions = torch.cat([twin(x[i:i + CHUNK]).argmax(1) for i in range(0, len(x), CHUNK)])
    return _scores(predictions, labels, ref, sqnr_db(outputs["clean"], outputs["noisy"][:ACTIVATION_IMAGES]))


def _scores(predictions: Tensor, labels: Tensor, reference: Tensor, activation_sqnr: float) -> dict:
    return {"accuracy": float((predictions == labels).double().mean()),
            "agreement": float((predictions == reference).double().mean()),
            "activation_sqnr_db": activation_sqnr}
