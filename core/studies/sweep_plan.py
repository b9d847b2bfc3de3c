"""The plan of the trade-off sweeps: which tables exist, what is in them, and how curves slice them.

One pruning method's **table** holds every sparsity x every bit width (per seed) at the
other settings of the sidebar. Its key is `table_config(...)`: the SweepConfig whose
`base` has the sidebar's position removed (prune_amount 0, weight_bits 32), so every
other CompressionConfig field (scheme, granularity, any field added later) is part of
the key by itself, while the two sliders are not: a slider move never asks for a new
table. The curves are slices of these tables: the sparsity curves at the sidebar's bit
width, the bits curves at the measured sparsity nearest the sidebar's (`nearest_sparsity`).
`core.studies.sweeps` measures the tables.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from itertools import product

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from core.explain.attribution import METHODS
from core.compression import WEIGHT_BITS, CompressionConfig

SPARSITIES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1.0)
BIT_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
GRID_SPARSITIES, GRID_BITS = SPARSITIES, BIT_WIDTHS  # the map is the whole table (older names, kept for callers)
BASELINES: dict[str, tuple[str, str | None]] = {  # name -> (prune_method, prune_scope); None: the sidebar's scope
    "global magnitude": ("magnitude", "global"),
    "layer-wise magnitude": ("magnitude", "layer"),
    "random": ("random", "global"),
    "structured": ("structured", None),
    "apoz": ("apoz", None),  # structured by activations; needs the model's calibration images
}
# Measured unless a sweep names its own: every baseline but APoZ (opt-in: a fifth table costs a quarter more
# time). APoZ is measured whenever the sidebar uses it, as the sidebar's own pair always is (baselines_for).
DEFAULT_BASELINES = tuple(name for name in BASELINES if name != "apoz")
SALIENCY_METRICS = ("spearman_abs", "spearman", "topk", "ssim")
FAITHFULNESS_METRICS = ("deletion_gain", "insertion_gain", "infidelity_gain", "deletion_auc", "deletion_random_auc",
                        "insertion_auc", "insertion_random_auc", "infidelity", "infidelity_random")
# Explanation quality of the compressed model's own maps (core.explain.quality), each beside a random map's.
QUALITY_METRICS = ("sparseness", "sparseness_random", "complexity", "complexity_random", "sensitivity",
                   "sensitivity_random")
CURVE_METRICS = FAITHFULNESS_METRICS + QUALITY_METRICS  # measured only along the curves the page shows
# Every CompressionConfig field but the random seed is a column (a field added later joins by itself).
CONFIG_COLUMNS = tuple(f.name for f in fields(CompressionConfig) if f.name != "seed")
SETTING_COLUMNS = ("curve", "baseline", "matches_sidebar", *CONFIG_COLUMNS, "fine_tuned")


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep measures; frozen, so it is a safe cache key."""

    base: CompressionConfig = CompressionConfig()   # the sidebar's current setting
    method: str = "saliency"                        # attribution method (core.explain.attribution.METHODS)
    probe_size: int = 64                            # class-stratified test images for the maps
    deletion_steps: int = 8                         # deletion/insertion curve points - 1
    infidelity_samples: int = 5                     # perturbations per probe
    sensitivity_samples: int = 3                    # nudged copies per image for max-sensitivity ...
    sensitivity_images: int = 16                    # ... of this many probes (IG: about 3x one point's maps)
    fine_tune_epochs: int = 0                       # > 0: also measure fine-tuned models
    fine_tune_lr: float = 1e-3
    seeds: tuple[int, ...] = (0,)                   # one original model per seed
    sparsities: tuple[float, ...] = SPARSITIES
    bit_widths: tuple[int, ...] = BIT_WIDTHS
    baselines: tuple[str, ...] = DEFAULT_BASELINES

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown attribution method {self.method!r}; choose one of {', '.join(METHODS)}")
        if unknown := [b for b in self.baselines if b not in BASELINES]:
            raise ValueError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")
        if bad := [b for b in self.bit_widths if b not in WEIGHT_BITS]:
            raise ValueError(f"bit widths must be among {WEIGHT_BITS}, got {bad}")
        if not self.sparsities or not all(0.0 <= a <= 1.0 for a in self.sparsities):
            raise ValueError("sparsities must lie between 0 and 1 (at least one)")
        if (not self.seeds or self.deletion_steps < 1 or self.infidelity_samples < 1 or self.sensitivity_samples < 1
                or self.sensitivity_images < 1
                or self.fine_tune_epochs < 0):
            raise ValueError("need at least one seed, deletion_steps, infidelity_samples and sensitivity_samples >= 1, "
                             "epochs >= 0")


def baseline_name(method: str, scope: str) -> str:
    """The curve name of a (prune_method, prune_scope) pair, e.g. ("structured", "global") -> "global structured"."""
    for name, pair in BASELINES.items():
        if pair == (method, scope):
            return name
    return f"{'layer-wise' if scope == 'layer' else 'global'} {method}"


def baselines_for(cfg: SweepConfig) -> dict[str, tuple[str, str]]:
    """The configured baselines (structured at the sidebar's scope), plus the sidebar's own pair if missing.

    The sidebar's own (method, scope) comes first: its table is measured first.
    """
    own = (cfg.base.prune_method, cfg.base.prune_scope)
    chosen = {}
    for name in cfg.baselines:
        method, scope = BASELINES[name]
        pair = (method, scope or cfg.base.prune_scope)
        chosen[baseline_name(*pair) if scope is None else name] = pair
    mine = next((name for name, pair in chosen.items() if pair == own), baseline_name(*own))
    return {mine: own, **{name: pair for name, pair in chosen.items() if name != mine}}


def table_config(cfg: SweepConfig, method: str, scope: str, fine_tuned: bool = False) -> SweepConfig:
    """The key of one method's table: `cfg` at (method, scope) without the sidebar's sparsity and bits.

    Non-fine-tuned tables have fine_tune_epochs 0 (and the default lr), so they are shared by
    every fine-tuning setting; baselines are irrelevant to a table and reset.
    """
    base = replace(cfg.base, prune_amount=0.0, weight_bits=32, prune_method=method, prune_scope=scope)
    tuning = {} if fine_tuned else {"fine_tune_epochs": 0, "fine_tune_lr": SweepConfig.fine_tune_lr}
    return replace(cfg, base=base, baselines=(), **tuning)


def table_plan(cfg: SweepConfig) -> dict[tuple[str, bool], SweepConfig]:
    """Every table the curves need, keyed by (baseline name, fine_tuned); the sidebar's own first."""
    tuned = (False, True) if cfg.fine_tune_epochs > 0 else (False,)
    return {(name, ft): table_config(cfg, method, scope, ft)
            for name, (method, scope) in baselines_for(cfg).items() for ft in tuned}


def table_cells(cfg: SweepConfig) -> list[tuple[float, int]]:
    """Every (sparsity, bits) of a table, sparsity-major."""
    return [(float(a), int(b)) for a, b in product(cfg.sparsities, cfg.bit_widths)]


def nearest_sparsity(cfg: SweepConfig, amount: float) -> float:
    """The table's sparsity closest to `amount` (the lower one on a tie)."""
    return float(min(sorted(cfg.sparsities), key=lambda a: abs(a - float(amount))))


def slice_cells(cfg: SweepConfig) -> list[tuple[float, int]]:
    """The cells the two curves through the sidebar's setting use: one column and one row of the table,
    and the uncompressed cell (0, 32), the reference line."""
    bits, amount = cfg.base.weight_bits, nearest_sparsity(cfg, cfg.base.prune_amount)
    cells = [(float(a), bits) for a in cfg.sparsities] + [(amount, int(b)) for b in cfg.bit_widths] + [(0.0, 32)]
    return list(dict.fromkeys(cells))


def curve_rows(tables: dict[tuple[str, bool], pd.DataFrame | None], cfg: SweepConfig,
               current: pd.DataFrame | None = None) -> pd.DataFrame:
    """The curves as slices of the tables (one row per point x seed; columns as in core.studies.sweeps).

    tables: (baseline name, fine_tuned) -> table rows (None: not measured yet).
    Sparsity curves at the sidebar's bits, bits curves at `nearest_sparsity`; one
    "reference" row per seed (the uncompressed model, from the first table's dense cell);
    current: rows of the sidebar's exact setting (see `current_rows`), as curve "current".
    """
    own = (cfg.base.prune_method, cfg.base.prune_scope)
    bits, amount = cfg.base.weight_bits, nearest_sparsity(cfg, cfg.base.prune_amount)
    parts = []
    for (name, _), table in tables.items():
        if table is None:
            continue
        mine = tuple(table[["prune_method", "prune_scope"]].iloc[0]) == own
        for curve, rows in (("sparsity", table[table.weight_bits == bits]),
                            ("bits", table[np.isclose(table.prune_amount, amount)])):
            parts.append(rows.assign(curve=curve, baseline=name, matches_sidebar=mine))
    if not parts:
        return pd.DataFrame(columns=[*SETTING_COLUMNS, "seed"])
    first = next(t for t in tables.values() if t is not None)
    dense = first[(first.prune_amount == 0) & (first.weight_bits == 32) & ~first.fine_tuned.astype(bool)]
    reference = dense.assign(curve="reference", baseline="uncompressed", matches_sidebar=False,
                             **{k: getattr(CompressionConfig(), k) for k in CONFIG_COLUMNS})
    if current is not None and len(current):
        parts.append(current.assign(curve="current", baseline=next(iter(baselines_for(cfg))), matches_sidebar=True))
    return _ordered(pd.concat([reference, *parts], ignore_index=True))


def current_rows(table: pd.DataFrame, cfg: SweepConfig) -> pd.DataFrame | None:
    """The rows (one per seed) of the sidebar's exact (sparsity, bits) in its own method's table, or None.

    None when the sidebar's sparsity is not a table sparsity: the caller measures that one cell.
    """
    at = table[np.isclose(table.prune_amount, float(cfg.base.prune_amount))
               & (table.weight_bits == cfg.base.weight_bits)]
    return at if len(at) else None


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Columns in the documented order: curve, baseline, matches_sidebar, seed, settings, metrics."""
    lead = ["curve", "baseline", "matches_sidebar", "seed", *CONFIG_COLUMNS, "fine_tuned"]
    return df[[c for c in lead if c in df] + [c for c in df if c not in lead]]


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


def seeded(ccfg: CompressionConfig, cfg: SweepConfig, seed_index: int) -> CompressionConfig:
    """`ccfg` with random pruning seeded for seed number `seed_index`: base.seed + seeds[seed_index]."""
    return replace(ccfg, seed=cfg.base.seed + cfg.seeds[seed_index])
