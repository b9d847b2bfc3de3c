"""Measuring a model before and after compression: accuracy, sparsity, size and MACs.

Definitions follow ShrinkBench (Blalock et al. 2020, REFERENCE §6): the compression
ratio compares storage sizes, the theoretical speedup compares multiply-accumulates
(MACs) of dense vs nonzero weights; the two are reported side by side, never mixed.
No function here mutates a model it is given (no mode flips, no hooks on it).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.compression import CompressionConfig
from core.compression.quantization import Quantize
from core.compression.steps import FP32_CODE, WeightCode
from core.fast_inference import inference_view
from core.layers import factors, is_conv, is_factored, layer_keys, prunable_layers, rank_of, stored_layers

FP32_BITS = 32


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarray fields element-wise would raise
class Evaluation:
    """Predictions of one model on one labelled set; the arrays are read-only.

    Shapes: predictions, labels (N,) int64; probabilities (N, K) float32 softmax;
    per_class_accuracy (K,) float64 and per_class_count (K,) int64. A class with no
    samples has count 0 and accuracy 0.0 (never NaN): check the count before plotting.
    """

    predictions: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    accuracy: float
    per_class_accuracy: np.ndarray
    per_class_count: np.ndarray

    @property
    def num_classes(self) -> int:
        return self.probabilities.shape[1]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor | np.ndarray, batch_size: int = 256) -> Evaluation:
    """Run `model` on x (N, C, H, W) and score its argmax against labels y (N,).

    The model is used as given: pass it in eval mode (this function does not call
    `.eval()`, because models are shared between sessions). Runs under
    `torch.inference_mode()`; neither the model nor x nor y is modified. Batches of
    256 rather than one big batch: on LeNet-5 with 1,000 MNIST images and one thread
    they measured about 1.5x faster (conv activations stay in cache); MLPs are
    indifferent. It runs the model's `inference_view` (2x2 max pooling as strided maxima: the same
    logits bit for bit, 2.5x faster on LeNet-5 here; the model itself is not changed).
    """
    labels = torch.as_tensor(y).detach().to("cpu", torch.int64).numpy().copy()
    if len(x) != len(labels) or len(x) == 0:
        raise ValueError(f"need as many labels as inputs (and at least one); got {len(x)} inputs, {len(labels)} labels")
    model = inference_view(model)
    with torch.inference_mode():
        logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        probabilities = torch.softmax(logits.float(), dim=1)
    predictions = logits.argmax(dim=1).numpy()
    probabilities = probabilities.numpy()
    num_classes = probabilities.shape[1]
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (the model has {num_classes} outputs)")
    correct = predictions == labels
    # bincount instead of a loop over classes: one pass, and empty classes come out as 0.
    count = np.bincount(labels, minlength=num_classes).astype(np.int64)
    hits = np.bincount(labels, weights=correct, minlength=num_classes)
    per_class = np.divide(hits, count, out=np.zeros(num_classes), where=count > 0)
    arrays = (predictions, probabilities, labels, per_class, count)
    for array in arrays:
        array.flags.writeable = False  # results get cached and shared: make accidents loud
    return Evaluation(predictions, probabilities, labels, float(correct.mean()), per_class, count)


def prediction_agreement(a: Evaluation, b: Evaluation) -> float:
    """Fraction of samples on which the two evaluations predict the same class (0..1)."""
    if a.predictions.shape != b.predictions.shape:
        raise ValueError(f"evaluations differ in length: {a.predictions.shape} vs {b.predictions.shape}")
    return float(np.mean(a.predictions == b.predictions))


def weight_storage_bits(weight: torch.Tensor, bits: int, quant_scheme: str, quant_granularity: str,
                        quant_range: str = "mse") -> int:
    """Bits a real encoder needs for `weight` quantized at `bits` (32: fp32): `coded_storage_bits`
    with the uniform code of those settings (`core.compression.quantization.Quantize.weight_code`)."""
    if bits != FP32_BITS and not 1 <= bits <= 8:
        raise ValueError(f"bits must be 1..8 or 32, got {bits}")
    if quant_granularity not in ("per_channel", "per_tensor") or quant_scheme not in ("symmetric", "affine"):
        raise ValueError(f"unknown quantization {quant_scheme!r} / {quant_granularity!r}")
    code = Quantize(weight_bits=bits, quant_scheme=quant_scheme, quant_granularity=quant_granularity,
                    quant_range=quant_range).weight_code(weight)
    return coded_storage_bits(weight, code or FP32_CODE)


def coded_storage_bits(weight: torch.Tensor, code: WeightCode) -> int:
    """Bits a real encoder needs for `weight` (any shape, dim 0 = output channels) in `code`.

    The code has L = code.levels values; a value costs v = ceil(log2 L) bits where zeros are
    stored as values, and a nonzero under a mask or CSR costs only u = ceil(log2(number of
    nonzero values)): a ternary nonzero is its sign (1 bit), so is a binary one, an affine 4-bit
    nonzero one of 15 values (4 bits), fp32 32 bits. With n = numel, z = number of nonzeros and
    i = ceil(log2(n)) index bits, the cheapest of three encodings is taken (REFERENCE §6):
      dense   = n * v     + side information of every group   (zeros stored as values)
      bitmask = z * u + n + side information of the groups with a nonzero
      CSR     = z * (u + i) + side information of the groups with a nonzero
    Side information is `code.params_per_group` bits per output channel ("channel") or per
    tensor: scales and zero points, or a codebook. A group with nothing to store costs nothing
    beyond its mask: its position bits say it is empty (at 100 % pruning a 1-bit layer costs what
    a 32-bit one does). Dense needs 0 to be a value: without one only when z == n. The weight is
    only read; zeros made by rounding count as zeros.
    """
    value_bits, nonzero_bits = ceil_log2(code.levels), ceil_log2(code.levels - code.has_zero)
    n = weight.numel()
    rows = weight.detach().reshape(weight.shape[0] if weight.dim() > 0 else 1, -1)
    z = int(torch.count_nonzero(rows))
    all_params, kept_params = side_bits(rows, code)
    index_bits = ceil_log2(n)
    candidates = [z * nonzero_bits + n + kept_params, z * (nonzero_bits + index_bits) + kept_params]
    if code.has_zero or z == n:
        candidates.append(n * value_bits + all_params)
    return min(candidates)


def side_bits(rows: torch.Tensor, code: WeightCode) -> tuple[int, int]:
    """(bits of the side information of every group of `rows` (out, -1), of the groups with a nonzero)."""
    used = rows.ne(0).any(1)
    groups, kept = (len(used), int(used.sum())) if code.groups == "channel" else (1, int(used.any()))
    return code.params_per_group * groups, code.params_per_group * kept


def ceil_log2(count: int) -> int:
    """ceil(log2(count)) for count >= 1, exact in integers: the bits that tell `count` values apart."""
    return (count - 1).bit_length()


def weight_sparsity(model: nn.Module) -> float:
    """Share (0..1) of the stored weights (Linear, Conv2d; a factored layer's factors) that are exactly zero;
    the model is only read."""
    layers = stored_layers(model)
    total = sum(m.weight.numel() for _, m in layers)
    zeros = sum(m.weight.numel() - int(torch.count_nonzero(m.weight.detach())) for _, m in layers)
    return zeros / total if total else 0.0


@dataclass(frozen=True)
class LayerStats:
    """Sparsity, storage and per-sample MACs of one prunable layer (Linear or Conv2d, or the two
    factors a low-rank step made of one, core.layers.FactoredLinear / FactoredConv2d).

    shape is the layer's weight shape in the original architecture (a factored layer's effective
    weight). params/nonzero/sparsity count the stored weights only: a factored layer's two factors,
    r·(in + out) for a Linear, r·(in·k·k + out) for a conv. The bias stays fp32 and dense and is in
    size_bits and dense_size_bits (the stored weights and bias as fp32). dense_macs is the layer
    computed as the dense, unfactored original (out·in·k·k per output position); remaining_macs
    counts the nonzero stored weights (a factored conv: positions·(nonzero of r·in·k·k + out·r)); a
    zeroed channel's effect on later layers is not propagated, as in ShrinkBench. rank: the rank a
    factored layer keeps, None for a dense layer.
    """

    name: str
    kind: str  # "linear" | "conv"
    shape: tuple[int, ...]
    params: int
    nonzero: int
    sparsity: float
    bits: int
    size_bits: int
    dense_size_bits: int
    dense_macs: int
    remaining_macs: int
    bias_params: int = 0
    rank: int | None = None

    @property
    def full_rank(self) -> int:
        """The rank of a dense weight of this shape: min(out, in·k·k)."""
        return min(self.shape[0], int(np.prod(self.shape[1:])))


def layer_stats(model: nn.Module, input_shape: tuple[int, ...], cfg: CompressionConfig | None = None) -> list[LayerStats]:
    """One LayerStats per `prunable_layers(model)` entry, for inputs of shape (C, H, W).

    Storage follows `cfg.weight_code` (the code of the compression that made `model`), applied to
    each stored weight (each factor of a factored layer), with the layer's short key so that a
    per-layer plan counts each layer in its own bits; None: fp32.

    Output sizes come from a forward pass of a deep copy (cached per architecture and
    input shape), so no hook is ever registered on `model`; the model is only read.
    """
    positions = _output_positions(model, tuple(input_shape))
    keys = layer_keys(model)
    return [_one_layer(name, module, positions[name], cfg, keys[name]) for name, module in prunable_layers(model)]


def _one_layer(name: str, module: nn.Module, positions: int, cfg: CompressionConfig | None, key: str) -> LayerStats:
    # with a pruning mask, `weight` is the masked tensor; a factored layer's weights are its factors'
    weights = [m.weight.detach() for m in factors(module)]
    bias = getattr(module, "bias", None)
    n, bias_n = sum(w.numel() for w in weights), (0 if bias is None else bias.numel())
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
    # A layer's own code (a per-layer plan) by its short key; a factored layer is left to the other steps.
    layer = None if is_factored(module) else key
    codes = [FP32_CODE if cfg is None else cfg.weight_code(w, layer=layer) for w in weights]
    shape = tuple(module.weight.shape)
    return LayerStats(
        name=name, kind="conv" if is_conv(module) else "linear", shape=shape,
        params=n, nonzero=nonzero, sparsity=1.0 - nonzero / n if n else 0.0,
        bits=max(ceil_log2(c.levels) for c in codes),
        size_bits=sum(coded_storage_bits(w, c) for w, c in zip(weights, codes)) + FP32_BITS * bias_n,
        dense_size_bits=FP32_BITS * (n + bias_n),
        dense_macs=positions * int(np.prod(shape)), remaining_macs=positions * nonzero, bias_params=bias_n,
        rank=rank_of(module),
    )


_POSITIONS_CACHE: dict[tuple, dict[str, int]] = {}  # (architecture, input shape) -> positions
_POSITIONS_CACHE_SIZE = 128


def _output_positions(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Per prunable layer, output positions per sample (H_out*W_out for conv, 1 for a flat Linear).

    MACs of a layer are positions * weight.numel() (for grouped convs too; for both factors of a
    factored conv, whose first factor has the original's stride and padding, the second is 1×1). The repr
    of a model lists every layer's hyper-parameters, so with the class it identifies
    the architecture; a race between threads merely computes the same entry twice.
    """
    key = (type(model).__module__, type(model).__qualname__, repr(model), input_shape)
    cached = _POSITIONS_CACHE.get(key)
    if cached is None:
        cached = _measure_positions(model, input_shape)
        if len(_POSITIONS_CACHE) < _POSITIONS_CACHE_SIZE:
            _POSITIONS_CACHE[key] = cached
    return cached


def _measure_positions(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    # A copy, because hooks on a shared model would fire in other sessions' threads.
    twin = copy.deepcopy(model).eval()  # eval on the copy only: a batch of one must not hit BatchNorm's train path
    positions: dict[str, int] = {}
    for name, module in prunable_layers(twin):
        channels = module.out_channels if is_conv(module) else module.out_features

        def record(_module, _inputs, output, name=name, channels=channels):
            positions[name] = output.numel() // channels  # batch of one

        module.register_forward_hook(record)
    with torch.inference_mode():
        twin(torch.zeros(1, *input_shape))
    return positions


def model_storage_bits(model: nn.Module, stats: list[LayerStats]) -> int:
    """Storage of every parameter of `model`: the layers' size_bits plus all other parameters in fp32.

    `stats` must be `layer_stats(model, ...)`. Parameters outside prunable layers
    (none in the registered models) are counted dense at 32 bits; buffers (pruning
    masks, running statistics) are not counted.
    """
    outside = parameter_count(model) - sum(s.params + s.bias_params for s in stats)
    if outside < 0:
        raise ValueError("stats do not belong to this model (they count more parameters than it has)")
    return sum(s.size_bits for s in stats) + FP32_BITS * outside


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (a pruned layer's `weight_orig` stands in for its `weight`)."""
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True, eq=False)
class CompressionReport:
    """Original vs compressed model: accuracy, agreement, sparsity, size and MACs.

    size_original_bits is the dense fp32 size (exactly 32 bits per parameter, however
    many weights happen to be zero); size_compressed_bits uses the cheapest sparse
    encoding (`weight_storage_bits`). Sizes are storage formats, not the in-memory size
    of a masked torch model (which is as large as the dense one). compression_ratio and
    theoretical_speedup are float('inf') when the compressed size / remaining MACs are
    0 (everything pruned); display that as "∞".
    """

    config: CompressionConfig
    original: Evaluation
    compressed: Evaluation
    agreement: float
    original_layers: tuple[LayerStats, ...]
    compressed_layers: tuple[LayerStats, ...]
    total_params: int
    prunable_params: int
    sparsity: float  # fraction of prunable weights that are exactly zero in the compressed model
    size_original_bits: int
    size_compressed_bits: int
    compression_ratio: float
    dense_macs: int
    remaining_macs: int
    theoretical_speedup: float

    @property
    def size_original_bytes(self) -> float:
        return self.size_original_bits / 8

    @property
    def size_compressed_bytes(self) -> float:
        return self.size_compressed_bits / 8

    @property
    def accuracy_change(self) -> float:
        """Compressed minus original accuracy (negative = the compressed model is worse)."""
        return self.compressed.accuracy - self.original.accuracy

    def to_frame(self) -> pd.DataFrame:
        return layer_table(self)


def compression_report(
    original: nn.Module,
    compressed: nn.Module,
    cfg: CompressionConfig,
    x_test: torch.Tensor,
    y_test: torch.Tensor | np.ndarray,
    original_eval: Evaluation | None = None,
) -> CompressionReport:
    """Evaluate both models on (x_test (N, C, H, W), y_test (N,)) and compare their layers.

    Pass `original_eval` (an `evaluate(original, x_test, y_test)`) to skip evaluating
    the original again. Both models must be in eval mode and have the same prunable
    layers; neither model nor the data is modified.
    """
    if original_eval is None:
        original_eval = evaluate(original, x_test, y_test)
    elif not np.array_equal(original_eval.labels, torch.as_tensor(y_test).numpy()):
        raise ValueError("original_eval was computed on other labels than y_test")
    compressed_eval = evaluate(compressed, x_test, y_test)
    input_shape = tuple(x_test.shape[1:])
    before = layer_stats(original, input_shape)
    after = layer_stats(compressed, input_shape, cfg)
    if [(s.name, s.shape) for s in before] != [(s.name, s.shape) for s in after]:
        raise ValueError("original and compressed models have different prunable layers")
    prunable = sum(s.params for s in after)
    size_original = FP32_BITS * parameter_count(original)
    size_compressed = model_storage_bits(compressed, after)
    dense_macs = sum(s.dense_macs for s in after)
    remaining = sum(s.remaining_macs for s in after)
    return CompressionReport(
        config=cfg, original=original_eval, compressed=compressed_eval,
        agreement=prediction_agreement(original_eval, compressed_eval),
        original_layers=tuple(before), compressed_layers=tuple(after),
        total_params=parameter_count(compressed), prunable_params=prunable,
        sparsity=1.0 - sum(s.nonzero for s in after) / prunable if prunable else 0.0,
        size_original_bits=size_original, size_compressed_bits=size_compressed,
        compression_ratio=_ratio(size_original, size_compressed),
        dense_macs=dense_macs, remaining_macs=remaining, theoretical_speedup=_ratio(dense_macs, remaining),
    )


def _ratio(numerator: int, denominator: int) -> float:
    # inf rather than an error: "everything pruned" is a legal slider position.
    if denominator == 0:
        return 1.0 if numerator == 0 else float("inf")
    return numerator / denominator


def layer_table(report: CompressionReport) -> pd.DataFrame:
    """One row per prunable layer, for display and CSV export (sizes in bytes, MACs per sample; rank: the
    singular values a factored layer keeps, full_rank for a dense layer, full_rank = min(out, in·k·k))."""
    rows = [
        {
            "layer": a.name, "kind": a.kind, "shape": "x".join(map(str, a.shape)), "params": a.params,
            "sparsity_original": b.sparsity, "sparsity_compressed": a.sparsity, "bits": a.bits,
            "size_original_bytes": b.dense_size_bits / 8, "size_compressed_bytes": a.size_bits / 8,
            "dense_macs": a.dense_macs, "remaining_macs": a.remaining_macs,
            "rank": a.full_rank if a.rank is None else a.rank, "full_rank": a.full_rank,
        }
        for b, a in zip(report.original_layers, report.compressed_layers)
    ]
    return pd.DataFrame(rows)
