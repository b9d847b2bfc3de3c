"""Uniform weight quantization, simulated in float, with a choice of range setting.

Fake quantization (`torch.fake_quantize_per_{tensor,channel}_affine`, axis 0): weights stay
float tensors that take only the code's values, so Captum can still explain the model.
Granularity "per_channel" gives one scale per output row/filter, "per_tensor" one per tensor.
Zero is always exactly representable, so pruned weights stay exactly zero. `weight` is never
modified.

The codes (REFERENCE §3):
- symmetric, b >= 2: q in [-(2^(b-1)-1), 2^(b-1)-1], zero point 0, step s = c / (2^(b-1)-1)
  for a clipping value c. 2 bits is TERNARY {-s, 0, s}: the usual [-2^(b-1), 2^(b-1)-1]
  would clip the positive side.
- affine, b >= 2: q in [0, 2^b-1] over the range [lo, hi] (lo <= 0 <= hi),
  s = (hi - lo) / (2^b-1), z = clamp(-round(lo / s), 0, 2^b-1) (torch.ao `determine_qparams`).
- b == 1, either scheme and every range setting: BINARY as in XNOR-Net, w_hat = sign(w) * a
  with a = mean |w| of the kept (nonzero) weights of the channel or tensor. For a sign code
  that a is already the least-squares choice (d/da sum (|w| - a)^2 = 0 gives the mean), so
  there is no range left to set. Pruned weights stay 0 (the sparsity mask stores them).

The range setting (`quant_range`) chooses c (symmetric) or [lo, hi] (affine):
- "minmax": c = max|w|, [lo, hi] = [min(w_min, 0), max(w_max, 0)]. At 2 bits every weight
  below max|w| / 2 becomes 0: most of a layer's weights (83 % of LeNet-5's).
- "mse": the clip minimizing ||w - q(w)||^2, chosen among CLIP_RATIOS (100 fractions of the
  minmax range, 1 included, so it is never worse than minmax), per channel or per tensor.
- "twn": Ternary Weight Networks (Li et al. 2016) at 2 bits, for either scheme: threshold
  D = 0.7 * mean|w|, level a = mean of the |w| above D, w_hat = sign(w) * a where |w| > D,
  else 0; both means over the kept (nonzero) weights, so pruning does not lower D. The
  threshold is D, not a / 2, so this code is applied directly, not by fake_quantize.
  TWN is a ternary method: at other bit widths "twn" falls back to "mse" (`range_used`,
  and `range_notice` says so in words).

After low-rank factorization each of a layer's two factors is quantized on its own (`core.layers.stored_layers`).

A channel or tensor with no nonzero weight (e.g. 100 % pruned) would get scale 0; it gets
the placeholder scale 1.0 instead and its weights stay 0. No NaN, ever.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from core.compression.steps import Context, Step, WeightCode, control, register
from core.layers import stored_layers

QUANT_SCHEMES = ("symmetric", "affine")
QUANT_GRANULARITIES = ("per_channel", "per_tensor")
QUANT_RANGES = ("minmax", "mse", "twn")
QUANT_BITS = (1, 2, 3, 4, 5, 6, 7, 8)
TWN_BITS = 2
TWN_THRESHOLD = 0.7
# Candidate clips as fractions of the minmax range. Written by hand rather than taken from a
# library: torch.ao's observers only do minmax or histogram ranges, AIMET and NNCF (whose MSE
# range setting this follows) are heavy toolkits that are not installed, and a grid of 100
# is the whole algorithm. The grid is searched exactly (no golden section): the error is not
# convex in c.
CLIP_RATIOS = torch.arange(1, 101, dtype=torch.float32) / 100
_CHUNK = 2_000_000  # elements per step of the search (weights x candidates): ~8 MB per temporary


def range_used(bits: int, quant_range: str) -> str:
    """The range setting in effect: "twn" means "mse" except at 2 bits (at 1 bit all are binary)."""
    return "mse" if quant_range == "twn" and bits != TWN_BITS else quant_range


def range_notice(bits: int, quant_range: str) -> str | None:
    """What a student should be told when the chosen range setting does not apply as named."""
    if bits == 1:
        return ("At 1 bit every range setting gives the same binary code, sign(w) × mean|w|, "
                "which already has the smallest squared error a sign code can have.")
    if quant_range == "twn" and bits != TWN_BITS:
        return (f"TWN (ternary weight networks) is a 2-bit code: at {bits} bits the range is set "
                "by MSE instead.")
    return None


def is_ternary(bits: int, scheme: str, quant_range: str) -> bool:
    """True when the code has the three levels {-a, 0, a}: symmetric 2 bits, or TWN."""
    return bits == TWN_BITS and (scheme == "symmetric" or range_used(bits, quant_range) == "twn")


def quantization_params(weight: Tensor, bits: int, scheme: str, granularity: str,
                        quant_range: str = "mse") -> tuple[Tensor, Tensor, int, int]:
    """(scale, zero_point, qmin, qmax) of `weight` (out, ...) at `bits` (1..8), as in the module docstring.

    scale is float32 and zero_point int32, both of shape (out,) for "per_channel" and 0-dim
    for "per_tensor". bits == 1: codes -1 and +1 only (scale = mean |w| of the kept weights),
    qmin, qmax = -1, 1. TWN: scale = a, zero point 0, qmin, qmax = -1, 1 (its threshold is D,
    see `quantize_weight`). `weight` is not modified.
    """
    _check_quant_args(bits, scheme, granularity, quant_range)
    rows = _rows(weight, granularity)
    used = range_used(bits, quant_range)
    if bits == 1 or used == "twn":
        scale = _binary_scale(rows) if bits == 1 else _twn(rows)[0]
        qmin, qmax, zero_point = -1, 1, torch.zeros_like(scale, dtype=torch.int32)
    elif scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        qmin, low, high = -qmax, None, rows.abs().amax(1)
        ratio = _best_ratio(rows, low, high, qmin, qmax) if used == "mse" else torch.ones_like(high)
        scale, zero_point = _symmetric(high * ratio, qmax)
    else:
        qmin, qmax = 0, 2**bits - 1
        low, high = rows.amin(1).clamp(max=0.0), rows.amax(1).clamp(min=0.0)
        ratio = _best_ratio(rows, low, high, qmin, qmax) if used == "mse" else torch.ones_like(high)
        scale, zero_point = _affine(low * ratio, high * ratio, qmin, qmax)
    if granularity == "per_tensor":
        scale, zero_point = scale[0], zero_point[0]
    return scale, zero_point, qmin, qmax


def _rows(weight: Tensor, granularity: str) -> Tensor:
    w = weight.detach().to(torch.float32)
    return w.reshape(w.shape[0], -1) if granularity == "per_channel" else w.reshape(1, -1)


def _binary_scale(rows: Tensor) -> Tensor:
    kept = (rows != 0).sum(1).clamp(min=1)
    scale = rows.abs().sum(1) / kept
    # No division by the 1-bit scale: only a zero scale (no kept weight) is replaced.
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _twn(rows: Tensor) -> tuple[Tensor, Tensor]:
    """TWN's (level a, threshold D) per row of `rows` (R, n); a = 1.0 for a row with no nonzero weight."""
    magnitude = rows.abs()
    mean = magnitude.sum(1) / (rows != 0).sum(1).clamp(min=1)
    threshold = TWN_THRESHOLD * mean
    above = magnitude > threshold.unsqueeze(1)
    level = (magnitude * above).sum(1) / above.sum(1).clamp(min=1)
    return torch.where(level > 0, level, torch.ones_like(level)), threshold


def _symmetric(clip: Tensor, qmax: int) -> tuple[Tensor, Tensor]:
    scale = _safe_scale(clip / qmax)
    return scale, torch.zeros_like(scale, dtype=torch.int32)


def _affine(low: Tensor, high: Tensor, qmin: int, qmax: int) -> tuple[Tensor, Tensor]:
    scale = _safe_scale((high - low) / (qmax - qmin))
    zero_point = (qmin - torch.round(low / scale)).clamp(qmin, qmax).to(torch.int32)
    return scale, zero_point


def _best_ratio(rows: Tensor, low: Tensor | None, high: Tensor, qmin: int, qmax: int) -> Tensor:
    """Per row, the CLIP_RATIOS entry whose clipped range gives the smallest squared error.

    rows (R, n); low None for symmetric (clip = ratio * high), else the affine range [low, high]
    is shrunk by the ratio at both ends. All candidates are evaluated at once (broadcast over a
    (R, k, n) block, k candidates per step); rounding as fake_quantize does it (x * (1 / s)).
    """
    rows = _without_zeros(rows)
    errors = []
    step = max(1, _CHUNK // max(rows.numel(), 1))
    for start in range(0, len(CLIP_RATIOS), step):
        ratios = CLIP_RATIOS[start:start + step].unsqueeze(0)                  # (1, k)
        if low is None:
            scale, zero_point = _symmetric(high.unsqueeze(1) * ratios, qmax)   # (R, k)
        else:
            scale, zero_point = _affine(low.unsqueeze(1) * ratios, high.unsqueeze(1) * ratios, qmin, qmax)
        scale = scale.unsqueeze(2)
        # In place, and the zero point only where there is one: the (R, k, n) block is the
        # whole cost of the search, and each pass over it costs about the same (memory-bound).
        error = rows.unsqueeze(1) * (1.0 / scale)
        if low is None:
            error.round_().clamp_(qmin, qmax)
        else:
            zero_point = zero_point.unsqueeze(2).float()
            error.round_().add_(zero_point).clamp_(qmin, qmax).sub_(zero_point)
        error.mul_(scale).sub_(rows.unsqueeze(1))
        errors.append(torch.linalg.vector_norm(error, dim=2))  # the root of the squared error: same order
    # argmin takes the first of equal errors; ratio 1 (minmax) is a candidate, so never worse.
    return CLIP_RATIOS[torch.cat(errors, 1).argmin(1)]


def _without_zeros(rows: Tensor) -> Tensor:
    """`rows` (R, n) with most exact zeros dropped: (R, m), m = the most nonzeros of any row.

    Exact for the search: a zero is a code of every candidate, so its error is 0 whatever the
    clip. After pruning this shrinks the search block (80 % pruned: about 3x less work).
    """
    nonzero = rows != 0
    most = int(nonzero.sum(1).max()) if rows.numel() else 0
    if most >= 0.75 * rows.shape[1]:
        return rows
    order = torch.sort(nonzero.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :max(most, 1)]
    return rows.gather(1, order)


def _safe_scale(scale: Tensor) -> Tensor:
    """Placeholder scale 1.0 where the scale is 0 (all-zero channel) or subnormal.

    fake_quantize multiplies by 1/scale: scale 0 divides by zero, and a subnormal scale
    makes 1/scale inf, so 0 * inf = NaN would turn pruned zeros into qmin. Weights that
    small (< 1.2e-38) round to 0 with the placeholder, which is what they are.
    """
    return torch.where(scale >= torch.finfo(torch.float32).tiny, scale, torch.ones_like(scale))


def quantize_weight(weight: Tensor, bits: int, scheme: str, granularity: str, quant_range: str = "mse") -> Tensor:
    """A new, detached tensor: `weight` (out, ...) fake-quantized to `bits`; input untouched.

    Same shape and dtype as `weight`; zeros stay exactly zero.
    """
    scale, zero_point, qmin, qmax = quantization_params(weight, bits, scheme, granularity, quant_range)
    w = weight.detach().to(torch.float32)
    shape = (-1, *([1] * (w.dim() - 1))) if granularity == "per_channel" else ()
    if bits == 1:
        # Binary is sign(), not a rounding step: fake_quantize cannot express it.
        out = torch.sign(w) * scale.view(shape)
    elif range_used(bits, quant_range) == "twn":
        threshold = _twn(_rows(w, granularity))[1]
        threshold = threshold.view(shape) if granularity == "per_channel" else threshold[0]
        out = torch.where(w.abs() > threshold, torch.sign(w) * scale.view(shape), torch.zeros_like(w))
    elif granularity == "per_channel":
        out = torch.fake_quantize_per_channel_affine(w, scale, zero_point, 0, qmin, qmax)
    else:
        out = torch.fake_quantize_per_tensor_affine(w, scale, zero_point, qmin, qmax)
    return out.to(weight.dtype)


def quantization_levels(weight: Tensor, bits: int, scheme: str, granularity: str,
                        quant_range: str = "mse") -> Tensor:
    """The values a quantized weight can take: (out, L) per channel or (L,) per tensor.

    L = 2^b - 1 (symmetric), 2^b (affine), 3 for TWN ({-a, 0, a}), 2 for bits == 1 ({-s, +s};
    pruned zeros are stored by the mask). The levels follow the range setting. Channels with no
    nonzero weight show the placeholder scale 1.0.
    """
    scale, zero_point, qmin, qmax = quantization_params(weight, bits, scheme, granularity, quant_range)
    codes = torch.tensor([-1.0, 1.0]) if bits == 1 else torch.arange(qmin, qmax + 1, dtype=torch.float32)
    return (codes - zero_point.unsqueeze(-1).float()) * scale.unsqueeze(-1)


def level_count(bits: int, scheme: str, quant_range: str = "mse") -> tuple[int, bool]:
    """(number of values of the code, whether 0 is one of them); bits 32 is float (2^32, with 0)."""
    if bits == 32:
        return 2**32, True
    if bits == 1:
        return 2, False
    if is_ternary(bits, scheme, quant_range):
        return 3, True
    return (2**bits - 1 if scheme == "symmetric" else 2**bits), True


def _check_quant_args(bits: int, scheme: str, granularity: str, quant_range: str) -> None:
    if bits not in QUANT_BITS:
        raise ValueError(f"bits must be one of 1..8 to quantize, got {bits!r}")
    for name, value, choices in (("scheme", scheme, QUANT_SCHEMES), ("granularity", granularity, QUANT_GRANULARITIES),
                                 ("quant_range", quant_range, QUANT_RANGES)):
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


WEIGHT_BITS = (*QUANT_BITS, 32)
FP32_BITS = 32
RANGE_HELP = ("How the step between quantization levels is chosen. **Min–max**: the largest |w| sets the range, "
              "so at 2 bits every weight below half of it becomes 0 (most of them). **MSE**: the range is "
              "clipped where the rounding error ‖w − q(w)‖² is smallest (100 clips tried, per channel or per "
              "tensor); weights beyond the clip are cut to the top level. **TWN** (Ternary Weight Networks, "
              "2 bits only; elsewhere MSE is used): weights below 0.7 × mean|w| become 0, the others "
              "± the mean of their |w|. At 1 bit all three give sign(w) × mean|w|.")

RANGE_WORDS = {"minmax": "min–max range", "mse": "MSE-clipped range", "twn": "TWN ternary"}


@register("quantize", order=40)
@dataclass(frozen=True)
class Quantize(Step):
    """Uniform weight quantization (fake-quantized in float), after pruning; zeros stay zero."""

    title = "Quantization"
    off_words = "no quantization (32-bit floats)"
    always_open = True
    pairs_with = ("prune", "lowrank")
    summary = "Every weight rounded to one of 2^b levels (b bits per weight), with a scale per channel or layer."

    weight_bits: int = control(32, label="Bit width", url="bits", widget="select_slider", choices=WEIGHT_BITS,
                               labels={32: "32 (float, off)"}, main=True, stops=WEIGHT_BITS, unit="-bit",
                               stop_labels={32: "32-bit (off)"},
                               help="Bits per weight after quantization; 32 means no quantization.")
    quant_scheme: str = control("symmetric", label="Quantization scheme", url="scheme", choices=QUANT_SCHEMES,
                                horizontal=True, labels={"symmetric": "Symmetric", "affine": "Affine (with zero point)"})
    quant_granularity: str = control("per_channel", label="Quantization granularity", url="granularity",
                                     choices=QUANT_GRANULARITIES, horizontal=True,
                                     labels={"per_channel": "Per channel", "per_tensor": "Per tensor"},
                                     help="One scale per output channel, or one for the whole layer.")
    quant_range: str = control("mse", label="Range setting", url="range", choices=QUANT_RANGES, help=RANGE_HELP,
                               labels={"minmax": "Min–max (largest |w|)", "mse": "MSE (best clipping)",
                                       "twn": "TWN (ternary, 2 bits)"})

    def active(self) -> bool:
        return self.weight_bits != FP32_BITS

    def describe(self) -> str:
        code = "binary sign × mean|w|" if self.weight_bits == 1 else RANGE_WORDS[self.range_used]
        return (f"{self.weight_bits}-bit {self.quant_scheme} {self.quant_granularity.replace('_', '-')} "
                f"quantization, {code}")

    def sweep_points(self) -> tuple[dict[str, Any], ...]:
        return tuple({"weight_bits": b} for b in (8, 6, 5, 4, 3, 2, 1))

    def apply(self, model: nn.Module, context: Context) -> None:
        for _, module in stored_layers(model):
            module.weight.copy_(quantize_weight(module.weight, self.weight_bits, self.quant_scheme,
                                                self.quant_granularity, self.quant_range))

    def weight_code(self, weight: Tensor) -> WeightCode | None:
        if not self.active():
            return None
        levels, has_zero = level_count(self.weight_bits, self.quant_scheme, self.quant_range)
        # One fp32 scale per group, plus a zero point for affine codes that have one (symmetric,
        # ternary and binary codes have zero point 0).
        sign_code = self.weight_bits == 1 or levels == 3
        per_group = FP32_BITS * (1 if self.quant_scheme == "symmetric" or sign_code else 2)
        return WeightCode(levels, has_zero, per_group, "channel" if self.quant_granularity == "per_channel" else "tensor")

    @property
    def range_used(self) -> str:
        """The range setting in effect ("twn" is a 2-bit code: at other widths "mse")."""
        return range_used(self.weight_bits, self.quant_range)

    def notes(self) -> list[str]:
        notice = range_notice(self.weight_bits, self.quant_range)
        return [notice] if notice and self.active() else []
