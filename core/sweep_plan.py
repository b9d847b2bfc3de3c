"""The plan of a trade-off sweep: which compression settings it measures, and which coincide.

`SweepConfig` says what to sweep; `curve_specs` / `grid_specs` list one `Spec` per row of
the result; `canonical` maps a spec to the compressed model it gives, so that specs
giving the same model (amount 0: method and scope irrelevant; 32 bits: scheme and
granularity irrelevant; seeds only matter to random pruning) are computed once.
`core.sweeps` runs the plan.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from core.attribution import METHODS
from core.compression import WEIGHT_BITS, CompressionConfig

SPARSITIES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99)
BIT_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
GRID_SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99)
GRID_BITS = (2, 3, 4, 6, 8, 32)
BASELINES: dict[str, tuple[str, str]] = {  # name -> (prune_method, prune_scope)
    "global magnitude": ("magnitude", "global"),
    "layer-wise magnitude": ("magnitude", "layer"),
    "random": ("random", "global"),
    "structured": ("structured", "layer"),
}
SALIENCY_METRICS = ("spearman_abs", "spearman", "topk", "ssim")
FAITHFULNESS_METRICS = ("deletion_gain", "insertion_gain", "infidelity_gain", "deletion_auc", "deletion_random_auc",
                        "insertion_auc", "insertion_random_auc", "infidelity", "infidelity_random")
SETTING_COLUMNS = ("curve", "baseline", "matches_sidebar", "prune_method", "prune_scope", "prune_amount",
                   "weight_bits", "quant_scheme", "quant_granularity", "fine_tuned")


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep measures; frozen, so it is a safe cache key."""

    base: CompressionConfig = CompressionConfig()   # the sidebar's current setting
    method: str = "saliency"                        # attribution method (core.attribution.METHODS)
    probe_size: int = 64                            # class-stratified test images for the maps
    deletion_steps: int = 8                         # deletion/insertion curve points - 1
    infidelity_samples: int = 5                     # perturbations per probe
    fine_tune_epochs: int = 0                       # > 0: also measure fine-tuned models
    fine_tune_lr: float = 1e-3
    seeds: tuple[int, ...] = (0,)                   # one original model per seed
    sparsities: tuple[float, ...] = SPARSITIES
    bit_widths: tuple[int, ...] = BIT_WIDTHS
    grid_sparsities: tuple[float, ...] = GRID_SPARSITIES
    grid_bits: tuple[int, ...] = GRID_BITS
    baselines: tuple[str, ...] = tuple(BASELINES)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown attribution method {self.method!r}; choose one of {', '.join(METHODS)}")
        if unknown := [b for b in self.baselines if b not in BASELINES]:
            raise ValueError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")
        if bad := [b for b in (*self.bit_widths, *self.grid_bits) if b not in WEIGHT_BITS]:
            raise ValueError(f"bit widths must be among {WEIGHT_BITS}, got {bad}")
        if not all(0.0 <= a <= 1.0 for a in (*self.sparsities, *self.grid_sparsities)):
            raise ValueError("sparsities must lie between 0 and 1")
        if not self.seeds or self.deletion_steps < 1 or self.infidelity_samples < 1 or self.fine_tune_epochs < 0:
            raise ValueError("need at least one seed, deletion_steps >= 1, infidelity_samples >= 1, epochs >= 0")


def baseline_name(method: str, scope: str) -> str:
    """The curve name of a (prune_method, prune_scope) pair, e.g. ("structured", "global") -> "global structured"."""
    for name, pair in BASELINES.items():
        if pair == (method, scope):
            return name
    return f"{'layer-wise' if scope == 'layer' else 'global'} {method}"


def baselines_for(cfg: SweepConfig) -> dict[str, tuple[str, str]]:
    """The configured baselines, plus the sidebar's own (method, scope) when it is not among them."""
    chosen = {name: BASELINES[name] for name in cfg.baselines}
    chosen.setdefault(baseline_name(cfg.base.prune_method, cfg.base.prune_scope),
                      (cfg.base.prune_method, cfg.base.prune_scope))
    return chosen


def probe_indices(y_test: Tensor | np.ndarray, size: int) -> np.ndarray:
    """Fixed, class-stratified test indices (sorted int64, at most `size`); y_test is only read.

    Classes take turns in a fixed random order (seed 0), so each class gets size // K or
    one more images; a class with too few images leaves its turns to the others.
    """
    labels = np.asarray(torch.as_tensor(y_test).cpu()).ravel()
    order = np.random.default_rng(0).permutation(len(labels))
    per_class = [order[labels[order] == c] for c in np.unique(labels)]
    longest = max((len(p) for p in per_class), default=0)
    turns = [p[i] for i in range(longest) for p in per_class if i < len(p)]
    return np.sort(np.asarray(turns[:max(size, 0)], dtype=np.int64))


@dataclass(frozen=True)
class Spec:
    """One row of a sweep's result (per seed): which curve, which baseline, which setting."""

    curve: str
    baseline: str
    matches_sidebar: bool
    cfg: CompressionConfig
    fine_tuned: bool


def canonical(seed_index: int, cfg: CompressionConfig, fine_tuned: bool) -> tuple:
    """The key (seed_index, setting, fine_tuned) of the compressed model a spec gives.

    Settings that change nothing are reset to one value; fine-tuning at amount 0 is a
    no-op (compress_fine_tuned equals compress there).
    """
    if cfg.prune_amount == 0:
        cfg, fine_tuned = replace(cfg, prune_method="magnitude", prune_scope="global", seed=0), False
    if cfg.prune_method != "random":
        cfg = replace(cfg, seed=0)
    if not cfg.quantized:
        cfg = replace(cfg, quant_scheme="symmetric", quant_granularity="per_channel")
    return seed_index, cfg, fine_tuned


def curve_specs(cfg: SweepConfig) -> list[Spec]:
    """Sparsity curves at the sidebar's bits and bits curves at its sparsity, for every baseline."""
    base, specs = cfg.base, []
    # The sidebar's own values join the axes, so every curve passes through the current setting.
    amounts = sorted({*cfg.sparsities, float(base.prune_amount)})
    bits = sorted({*cfg.bit_widths, base.weight_bits})
    tuned = (False, True) if cfg.fine_tune_epochs > 0 else (False,)
    specs.append(Spec("reference", "uncompressed", False, CompressionConfig(), False))
    for name, (method, scope) in baselines_for(cfg).items():
        own = replace(base, prune_method=method, prune_scope=scope)
        mine = (method, scope) == (base.prune_method, base.prune_scope)
        for ft in tuned:
            specs += [Spec("sparsity", name, mine, replace(own, prune_amount=a), ft) for a in amounts]
            specs += [Spec("bits", name, mine, replace(own, weight_bits=b), ft) for b in bits]
    return specs


def grid_specs(cfg: SweepConfig) -> list[Spec]:
    """Every grid_sparsities x grid_bits cell for the sidebar's pruning method (fine-tuned if epochs > 0)."""
    name, ft = baseline_name(cfg.base.prune_method, cfg.base.prune_scope), cfg.fine_tune_epochs > 0
    return [Spec("grid", name, True, replace(cfg.base, prune_amount=a, weight_bits=b), ft)
            for a in cfg.grid_sparsities for b in cfg.grid_bits]


def computed_points(cfg: SweepConfig, grid: bool = False) -> int:
    """How many compressed models one seed of a curve (or grid) sweep computes after de-duplication."""
    specs = grid_specs(cfg) if grid else curve_specs(cfg)
    return len({canonical(0, seeded(s.cfg, cfg, 0), s.fine_tuned) for s in specs})


def seeded(ccfg: CompressionConfig, cfg: SweepConfig, seed_index: int) -> CompressionConfig:
    """`ccfg` with random pruning seeded for seed number `seed_index`: base.seed + seeds[seed_index]."""
    return replace(ccfg, seed=cfg.base.seed + cfg.seeds[seed_index])
