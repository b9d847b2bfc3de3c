"""Pruning and quantization of a copy of a trained model.

`compress(model, cfg)` deep-copies `model`, prunes the copy, then quantizes it. The
input is never touched. Only the `weight` of `core.layers.prunable_layers` (Linear,
Conv2d) is pruned and quantized; biases stay fp32 and dense.

Pruning (torch.nn.utils.prune, made permanent with `prune.remove`, so the result is a
plain module with no `weight_orig`, `weight_mask` or forward pre-hooks):

- "magnitude": the round(amount * n) smallest |w|. Scope "global" ranks all prunable
  weights together (uneven per-layer sparsity, as `prune.global_unstructured` with
  `L1Unstructured`); scope "layer" prunes the same fraction of every layer (as
  `prune.l1_unstructured`). The ranking is an unsorted `torch.topk` (the library's
  sorted one is ~10x slower at high amounts, see `_keep_mask`); the mask is applied
  with `prune.custom_from_mask`.
- "random": a uniformly random subset, reproducible from `cfg.seed`: the same ranking
  on uniform random scores drawn from a local `torch.Generator` (the distribution of
  `RandomUnstructured`). The global RNG is neither read nor changed (fork_rng would
  briefly reseed the process-wide RNG, which races with other sessions' threads).
- "structured": whole output units (Linear rows, Conv2d filters), the ones with the smallest
  mean |w| of their row (the L1 norm divided by fan-in: it compares units of layers with
  different fan-in, and within a layer it orders units as the L1 norm does). `prune_amount`
  means what it means for the other methods: the share of ALL prunable weights set to zero.
  Whole units are removed until that share is reached, as near as whole units allow (the
  nearest count, not "at least"). Scope "global": one ranking of every unit. Scope "layer":
  every layer but the last loses the same share of its units (a share chosen so that the
  network's total matches `prune_amount`). The output units of the LAST prunable layer are
  the classes and are never removed, so structured pruning reaches at most
  `structured_limit(model)` of the weights (about 99 % for LeNet-5). Unstructured methods prune
  all layers, the last included (as in Han et al. 2015).
- `prune_amount` 0 skips pruning; 1.0 zeroes every prunable weight (unstructured) or
  every unit but the classes (structured); the model still runs on its biases.

Quantization (`weight_bits` < 32) follows pruning: core.compression.quantization (range settings
"minmax", "mse", "twn"; zeros stay exactly zero).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from core.layers import prunable_layers
from core.compression.quantization import (QUANT_GRANULARITIES, QUANT_RANGES, QUANT_SCHEMES, quantization_levels,  # noqa: F401
                               quantization_params, quantize_weight, range_used)

PRUNE_METHODS = ("magnitude", "random", "structured")
PRUNE_SCOPES = ("global", "layer")
WEIGHT_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)

Layers = list[tuple[str, nn.Module]]


@dataclass(frozen=True)
class CompressionConfig:
    """Every setting of the compressor; frozen, so it is a safe cache key."""

    prune_amount: float = 0.0               # fraction of prunable weights set to zero, 0..1 (every method)
    prune_method: str = "magnitude"         # "magnitude" | "random" | "structured"
    prune_scope: str = "global"             # "global" | "layer"
    weight_bits: int = 32                   # 1..8, or 32 = no quantization
    quant_scheme: str = "symmetric"         # "symmetric" | "affine"
    quant_granularity: str = "per_channel"  # "per_channel" | "per_tensor"
    seed: int = 0                           # only used by random pruning
    quant_range: str = "mse"                # "minmax" | "mse" | "twn" (2 bits; elsewhere mse)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.prune_amount) <= 1.0:
            raise ValueError(f"prune_amount must be between 0 and 1, got {self.prune_amount!r}")
        _check_choice("prune_method", self.prune_method, PRUNE_METHODS)
        _check_choice("prune_scope", self.prune_scope, PRUNE_SCOPES)
        _check_choice("weight_bits", self.weight_bits, WEIGHT_BITS)
        _check_choice("quant_scheme", self.quant_scheme, QUANT_SCHEMES)
        _check_choice("quant_granularity", self.quant_granularity, QUANT_GRANULARITIES)
        _check_choice("quant_range", self.quant_range, QUANT_RANGES)

    @property
    def quantized(self) -> bool:
        return self.weight_bits != 32

    @property
    def range_used(self) -> str:
        """The range setting in effect ("twn" is a 2-bit code: at other widths "mse")."""
        return range_used(self.weight_bits, self.quant_range)


def _check_choice(field: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(map(str, choices))}; got {value!r}")


# ---------------------------------------------------------------------------- compress


def compress(model: nn.Module, cfg: CompressionConfig) -> nn.Module:
    """A pruned, then quantized, `copy.deepcopy` of `model`; `model` itself is untouched.

    The copy keeps the input's training flag and every parameter's requires_grad (and
    the Parameter objects of the copy stay Parameters: weights are changed in place on
    the copy only). The result has no pruning hooks or masks. See the module docstring
    for what each setting means.
    """
    compressed = copy.deepcopy(model)
    layers = prunable_layers(compressed)
    # no_grad: the masks and quantized weights are constants, no autograd graph needed.
    with torch.no_grad():
        if float(cfg.prune_amount) > 0.0 and layers:
            _prune(layers, cfg)
        if cfg.quantized:
            for _, module in layers:
                module.weight.copy_(quantize_weight(module.weight, cfg.weight_bits, cfg.quant_scheme,
                                                    cfg.quant_granularity, cfg.quant_range))
    return compressed


def _prune(layers: Layers, cfg: CompressionConfig) -> None:
    """Prune the given layers of a copy in place and make the pruning permanent."""
    # float(): an int amount means "that many weights" to torch.nn.utils.prune.
    amount = float(cfg.prune_amount)
    orders = [list(module._parameters) for _, module in layers]
    if cfg.prune_method == "structured":
        _prune_structured(layers, amount, cfg.prune_scope)
    else:
        scores = _random_scores(layers, cfg.seed) if cfg.prune_method == "random" else None
        _prune_unstructured(layers, amount, cfg.prune_scope, scores)
    for (_, module), order in zip(layers, orders):
        if prune.is_pruned(module):
            prune.remove(module, "weight")
            # prune re-registers `weight` after `bias`: restore the input's order so that
            # parameters() and state_dict() line up with the original model's.
            for name in order:
                module._parameters[name] = module._parameters.pop(name)


def _random_scores(layers: Layers, seed: int) -> list[Tensor]:
    """Uniform random importance scores, one tensor per layer, from a local generator."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(m.weight.shape, generator=generator) for _, m in layers]


def _prune_unstructured(layers: Layers, amount: float, scope: str, scores: list[Tensor] | None) -> None:
    """Individual weights with the smallest |score| (|w| when scores is None)."""
    if scores is None:
        scores = [m.weight.detach().abs() for _, m in layers]
    if scope == "global":
        masks = _keep_mask(torch.cat([s.flatten() for s in scores]), amount).split([s.numel() for s in scores])
    else:
        masks = [_keep_mask(s.flatten(), amount) for s in scores]
    for (_, module), mask in zip(layers, masks):
        prune.custom_from_mask(module, "weight", mask.view_as(module.weight))


def _keep_mask(scores: Tensor, amount: float) -> Tensor:
    """Flat float mask: 0 for the round(amount * n) smallest scores, 1 elsewhere.

    The rule and rounding of prune.L1Unstructured / global_unstructured, but with an
    unsorted topk: their sorted topk takes about 25 ms at 80 % of LeNet-300's 266k
    weights on one thread, the unsorted one about 2 ms (same set when there are no ties).
    """
    mask = torch.ones_like(scores)
    k = round(amount * scores.numel())
    mask[torch.topk(scores, k, largest=False, sorted=False).indices] = 0.0
    return mask


def structured_limit(model: nn.Module) -> float:
    """The largest share of prunable weights structured pruning can zero: all but the classes' layer."""
    sizes = [m.weight.numel() for _, m in prunable_layers(model)]
    return (sum(sizes) - sizes[-1]) / sum(sizes) if len(sizes) > 1 else 0.0


def _prune_structured(layers: Layers, amount: float, scope: str) -> None:
    """Whole units of every layer but the last, until about amount * (all prunable weights) are zero."""
    units = layers[:-1]  # the last layer's units are the classes
    if not units:
        return
    target = round(amount * sum(m.weight.numel() for _, m in layers))
    if scope == "layer":
        share = min(1.0, target / sum(m.weight.numel() for _, m in units))
        for _, module in units:
            count = round(share * module.weight.shape[0])
            if count:  # an int amount is a number of units to torch.nn.utils.prune
                prune.ln_structured(module, "weight", count, n=1, dim=0)
        return
    scores = torch.cat([m.weight.detach().abs().flatten(1).mean(1) for _, m in units])
    sizes = torch.cat([torch.full((m.weight.shape[0],), m.weight[0].numel()) for _, m in units])
    order = torch.argsort(scores, stable=True)
    removed = torch.cat([torch.zeros(1, dtype=sizes.dtype), sizes[order].cumsum(0)])
    count = int((removed - target).abs().argmin())  # the nearest reachable total (first of a tie: fewer)
    keep = torch.ones_like(scores)
    keep[order[:count]] = 0.0
    for (_, module), unit_keep in zip(units, keep.split([m.weight.shape[0] for _, m in units])):
        weight = module.weight
        unit_keep = unit_keep.to(weight.dtype).view(-1, *([1] * (weight.dim() - 1)))
        prune.custom_from_mask(module, "weight", unit_keep.expand_as(weight))
