"""Pruning and quantization of a copy of a trained model.

(Skeleton: `compress` is written by the compression task; the config is fixed.)
"""
from __future__ import annotations

from dataclasses import dataclass

PRUNE_METHODS = ("magnitude", "random", "structured")
PRUNE_SCOPES = ("global", "layer")
WEIGHT_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
QUANT_SCHEMES = ("symmetric", "affine")
QUANT_GRANULARITIES = ("per_channel", "per_tensor")


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
