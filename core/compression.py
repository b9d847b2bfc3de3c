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
- "structured": whole output units (Linear rows, Conv2d filters). Scope "layer":
  `prune.ln_structured(n=1, dim=0)` per layer. Scope "global": units of all layers
  ranked by mean |w| of their row (the L1 norm divided by fan-in, since fan-in differs
  between layers) and applied with `prune.custom_from_mask`. The output units of the
  LAST prunable layer are the classes and are never removed; `prune_amount` is the
  fraction of the units of the other prunable layers. Unstructured methods prune all
  layers, the last included (as in Han et al. 2015).
- `prune_amount` 0 skips pruning; 1.0 zeroes every prunable weight (unstructured) or
  every unit but the classes (structured); the model still runs on its biases.

Quantization (`weight_bits` < 32) is simulated in float (fake quantization with
`torch.fake_quantize_per_{tensor,channel}_affine`, axis 0), after pruning. Zero is
always exactly representable, so pruned weights stay exactly zero. Granularity
"per_channel" gives one scale per output row/filter, "per_tensor" one per tensor.

- symmetric, b >= 2: restricted range q in [-(2^(b-1)-1), 2^(b-1)-1],
  scale = max|w| / (2^(b-1)-1), zero point 0. So 2 bits is TERNARY {-s, 0, s}
  (2^b - 1 levels); the usual [-2^(b-1), 2^(b-1)-1] would clip the positive side.
- affine, b >= 2: q in [0, 2^b-1], s = (max(x_max,0) - min(x_min,0)) / (2^b-1),
  z = clamp(-round(min(x_min,0) / s), 0, 2^b-1) (torch.ao `determine_qparams`).
- b == 1, either scheme: BINARY as in XNOR-Net, w_hat = sign(w) * mean|w|, the mean
  taken over the kept (nonzero) weights of the channel or tensor. Levels {-s, +s};
  pruned weights stay 0 (their position is stored by the sparsity mask, not the code).
- A channel or tensor with no nonzero weight (e.g. 100 % pruned) would get scale 0;
  it gets the placeholder scale 1.0 instead and its weights stay 0. No NaN, ever.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from core.layers import prunable_layers

PRUNE_METHODS = ("magnitude", "random", "structured")
PRUNE_SCOPES = ("global", "layer")
WEIGHT_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
QUANT_SCHEMES = ("symmetric", "affine")
QUANT_GRANULARITIES = ("per_channel", "per_tensor")

Layers = list[tuple[str, nn.Module]]


@dataclass(frozen=True)
class CompressionConfig:
    """Every setting of the compressor; frozen, so it is a safe cache key."""

    prune_amount: float = 0.0               # fraction of prunable weights (or units) set to zero, 0..1
    prune_method: str = "magnitude"         # "magnitude" | "random" | "structured"
    prune_scope: str = "global"             # "global" | "layer"
    weight_bits: int = 32                   # 1..8, or 32 = no quantization
    quant_scheme: str = "symmetric"         # "symmetric" | "affine"
    quant_granularity: str = "per_channel"  # "per_channel" | "per_tensor"
    seed: int = 0                           # only used by random pruning

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.prune_amount) <= 1.0:
            raise ValueError(f"prune_amount must be between 0 and 1, got {self.prune_amount!r}")
        _check_choice("prune_method", self.prune_method, PRUNE_METHODS)
        _check_choice("prune_scope", self.prune_scope, PRUNE_SCOPES)
        _check_choice("weight_bits", self.weight_bits, WEIGHT_BITS)
        _check_choice("quant_scheme", self.quant_scheme, QUANT_SCHEMES)
        _check_choice("quant_granularity", self.quant_granularity, QUANT_GRANULARITIES)

    @property
    def quantized(self) -> bool:
        return self.weight_bits != 32


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
                module.weight.copy_(
                    quantize_weight(module.weight, cfg.weight_bits, cfg.quant_scheme, cfg.quant_granularity)
                )
    return compressed


def _prune(layers: Layers, cfg: CompressionConfig) -> None:
    """Prune the given layers of a copy in place and make the pruning permanent."""
    # float(): an int amount means "that many weights" to torch.nn.utils.prune.
    amount = float(cfg.prune_amount)
    orders = [list(module._parameters) for _, module in layers]
    if cfg.prune_method == "structured":
        _prune_structured(layers[:-1], amount, cfg.prune_scope)  # the classes are kept
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


def _prune_structured(layers: Layers, amount: float, scope: str) -> None:
    """Whole output units (rows / filters) with the smallest L1 norm."""
    if not layers:
        return
    if scope == "layer":
        for _, module in layers:
            prune.ln_structured(module, "weight", amount, n=1, dim=0)
        return
    # Global: the L1 norm grows with fan-in (a 150-input filter vs a 400-input row),
    # so units are ranked by the mean |w| of their row, which compares across layers.
    unit_scores = [m.weight.detach().abs().flatten(1).mean(1) for _, m in layers]
    keep = _keep_mask(torch.cat(unit_scores), amount).split([s.numel() for s in unit_scores])
    for (_, module), unit_keep in zip(layers, keep):
        weight = module.weight
        unit_keep = unit_keep.to(weight.dtype).view(-1, *([1] * (weight.dim() - 1)))
        prune.custom_from_mask(module, "weight", unit_keep.expand_as(weight))


# ------------------------------------------------------------------------ quantization


def quantization_params(weight: Tensor, bits: int, scheme: str, granularity: str) -> tuple[Tensor, Tensor, int, int]:
    """(scale, zero_point, qmin, qmax) of `weight` at `bits` (1..8), as in the module docstring.

    weight: (out, ...) with axis 0 the output channels. scale is float32 and zero_point
    int32, both of shape (out,) for "per_channel" and 0-dim for "per_tensor". For
    bits == 1 the codes are -1 and +1 only (scale = mean |w| of the kept weights),
    and qmin, qmax = -1, 1. `weight` is not modified.
    """
    _check_quant_args(bits, scheme, granularity)
    w = weight.detach().to(torch.float32)
    rows = w.reshape(w.shape[0], -1) if granularity == "per_channel" else w.reshape(1, -1)
    if bits == 1:
        qmin, qmax = -1, 1
        kept = (rows != 0).sum(1).clamp(min=1)
        scale = rows.abs().sum(1) / kept
        # No division by the 1-bit scale: only a zero scale (no kept weight) is replaced.
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    elif scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax
        scale = _safe_scale(rows.abs().amax(1) / qmax)
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        qmin, qmax = 0, 2**bits - 1
        low, high = rows.amin(1).clamp(max=0.0), rows.amax(1).clamp(min=0.0)
        scale = _safe_scale((high - low) / (qmax - qmin))
        zero_point = (qmin - torch.round(low / scale)).clamp(qmin, qmax).to(torch.int32)
    if granularity == "per_tensor":
        scale, zero_point = scale[0], zero_point[0]
    return scale, zero_point, qmin, qmax


def _safe_scale(scale: Tensor) -> Tensor:
    """Placeholder scale 1.0 where the scale is 0 (all-zero channel) or subnormal.

    fake_quantize multiplies by 1/scale: scale 0 divides by zero, and a subnormal scale
    makes 1/scale inf, so 0 * inf = NaN would turn pruned zeros into qmin. Weights that
    small (< 1.2e-38) round to 0 with the placeholder, which is what they are.
    """
    return torch.where(scale >= torch.finfo(torch.float32).tiny, scale, torch.ones_like(scale))


def quantize_weight(weight: Tensor, bits: int, scheme: str, granularity: str) -> Tensor:
    """A new, detached tensor: `weight` (out, ...) fake-quantized to `bits`; input untouched.

    Same shape and dtype as `weight`; zeros stay exactly zero.
    """
    scale, zero_point, qmin, qmax = quantization_params(weight, bits, scheme, granularity)
    w = weight.detach().to(torch.float32)
    if bits == 1:
        # Binary is sign(), not a rounding step: fake_quantize cannot express it.
        shape = (-1, *([1] * (w.dim() - 1))) if granularity == "per_channel" else ()
        out = torch.sign(w) * scale.view(shape)
    elif granularity == "per_channel":
        out = torch.fake_quantize_per_channel_affine(w, scale, zero_point, 0, qmin, qmax)
    else:
        out = torch.fake_quantize_per_tensor_affine(w, scale, zero_point, qmin, qmax)
    return out.to(weight.dtype)


def quantization_levels(weight: Tensor, bits: int, scheme: str, granularity: str) -> Tensor:
    """The values a quantized weight can take: (out, L) per channel or (L,) per tensor.

    L = 2^b - 1 (symmetric), 2^b (affine), 2 for bits == 1 ({-s, +s}; pruned zeros are
    stored by the mask). Channels with no nonzero weight show the placeholder scale 1.0.
    """
    scale, zero_point, qmin, qmax = quantization_params(weight, bits, scheme, granularity)
    codes = torch.tensor([-1.0, 1.0]) if bits == 1 else torch.arange(qmin, qmax + 1, dtype=torch.float32)
    return (codes - zero_point.unsqueeze(-1).float()) * scale.unsqueeze(-1)


def _check_quant_args(bits: int, scheme: str, granularity: str) -> None:
    if bits not in WEIGHT_BITS or bits == 32:
        raise ValueError(f"bits must be one of 1..8 to quantize, got {bits!r}")
    _check_choice("scheme", scheme, QUANT_SCHEMES)
    _check_choice("granularity", granularity, QUANT_GRANULARITIES)
