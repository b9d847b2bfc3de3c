"""Per-layer settings chosen from the sensitivity table: a size target, or accuracy AND explanations kept.

Every layer may take any pair (prune rate, bit width) of the analysis' settings (rates of
`cfg.rates` or none, widths of `cfg.bits` or 32). What a pair costs is ESTIMATED from the
sensitivity table, additively (loss when the layer is pruned alone + loss when it is quantized
alone), and what it saves is counted exactly (the layer compressed as the plan would, sized by
core.metrics). Both searches are greedy, as AIMET's AutoQuant and NNCF's accuracy control are:

- `search_size`: from the dense model, take the move (one layer to a smaller pair) that saves the
  most bits per estimated accuracy point lost, until the model fits `target_bits`; the plan found
  is then measured. It is compared with the best uniform setting (every layer the same pair) that
  fits the same size.
- `search_constraints`: "the smallest model that is still right for the same reasons". Moves are
  tried in the same order (cost = the share of each budget the estimate uses up), and every move is
  MEASURED before it is kept: a move is kept only when accuracy stays within `max_drop` of the
  original AND the explanation agreement with the original's maps (mean `explanation` over the
  probe set) stays at or above `min_explanation`. A refused pair also rules out the pairs that
  compress the layer at least as hard in both ways. The plan returned has passed the measurement,
  so it always meets both constraints (the dense model does, trivially). It is compared with the
  smallest uniform setting that meets the same constraints.

Nothing here modifies a model: plans are applied to copies (`layer_plan.compress_with_plan`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import pandas as pd
from torch import nn

from core.data import Dataset
from core.layers import prunable_layers
from core.studies.layer_plan import LayerPlan, LayerSetting, measure_plan
from core.studies.sensitivity import (SensitivityConfig, compress_layer, layer_keys, layer_size_bits,
                                      structured_applies)
from core.studies.sweeps import references

MAX_EVALS = 48          # measured moves of the constrained search at most (about 0.1 s each on LeNet-5)
TINY = 1e-9             # estimated loss below this counts as none (the most saved bits win)

Progress = Callable[[float, str], None]
Pair = tuple[float, int]  # (prune rate, bit width)


@dataclass(frozen=True, eq=False)
class SearchResult:
    """A plan found, its measured figures, the uniform setting it is compared with, and the search's log."""

    plan: LayerPlan
    figures: dict                # layer_plan.measure_plan of the plan
    met: bool                    # size target reached / (always True) constraints met
    baseline: dict | None        # the uniform row compared with, None when no uniform setting qualifies
    steps: pd.DataFrame          # one row per move tried: layer, prune, bits, size_bits, accuracy, explanation, kept
    uniform: pd.DataFrame        # every uniform setting, measured


def pairs(cfg: SensitivityConfig) -> list[Pair]:
    """Every (prune rate, bit width) a layer may take, dense (0, 32) first."""
    return list(product((0.0, *map(float, cfg.rates)), (32, *map(int, cfg.bits))))


def layer_options(model: nn.Module, cfg: SensitivityConfig) -> dict[str, dict[Pair, int]]:
    """Per layer key, the size in bits of the layer at every applicable pair (compressed as a plan would)."""
    keys, out = layer_keys(model), {}
    for name, module in prunable_layers(model):
        out[keys[name]] = {(r, b): layer_size_bits(module, compress_layer(module, cfg.base, r, b), b, cfg.base)
                           for r, b in pairs(cfg) if r == 0 or structured_applies(model, name, cfg.base)}
    return out


def estimated_losses(table: pd.DataFrame, explanation: str = "spearman_abs") -> dict[str, dict[Pair, tuple[float, float]]]:
    """Per layer key and pair: (accuracy lost, explanation agreement lost), the two one-layer losses added."""
    base = table.attrs["original_accuracy"]
    out: dict[str, dict[Pair, tuple[float, float]]] = {}
    for key, rows in table[table.applicable.astype(bool)].groupby("key", sort=False):
        prune = {0.0: (0.0, 0.0), **{float(r.prune_amount): (max(0.0, base - r.accuracy), max(0.0, 1 - getattr(r, explanation)))
                                     for r in rows[rows.kind == "prune"].itertuples()}}
        quant = {32: (0.0, 0.0), **{int(r.weight_bits): (max(0.0, base - r.accuracy), max(0.0, 1 - getattr(r, explanation)))
                                    for r in rows[rows.kind == "quantize"].itertuples()}}
        out[key] = {(p, b): (prune[p][0] + quant[b][0], prune[p][1] + quant[b][1]) for p in prune for b in quant}
    return out


def _plan(current: dict[str, Pair]) -> LayerPlan:
    return LayerPlan(tuple(LayerSetting(k, p, b) for k, (p, b) in current.items() if (p, b) != (0.0, 32)))


def _moves(current: dict[str, Pair], sizes: dict[str, dict[Pair, int]], cost: Callable[[str, Pair], float],
           refused: set[tuple[str, Pair]]) -> list[tuple[float, str, Pair]]:
    """Every move of one layer to a smaller pair, best first: (bits saved per estimated cost, key, pair)."""
    moves = []
    for key, pair in current.items():
        for option, size in sizes[key].items():
            blocked = any(k == key and option[0] >= r and option[1] <= b for k, (r, b) in refused)
            if size < sizes[key][pair] and not blocked:
                extra = max(cost(key, option) - cost(key, pair), TINY)
                moves.append(((sizes[key][pair] - size) / extra, key, option))
    return sorted(moves, key=lambda m: (-m[0], m[1], m[2]))


def uniform_table(model: nn.Module, data: Dataset, cfg: SensitivityConfig, refs: list | None = None,
                  progress: Progress | None = None) -> pd.DataFrame:
    """Every uniform setting (each layer the same pair; structured: the classes' layer not pruned), measured."""
    ref = (refs or references(model, data, cfg.sweep))[0]
    keys, report = layer_keys(model), progress or (lambda f, m: None)
    last = keys[prunable_layers(model)[-1][0]]
    rows, grid = [], pairs(cfg)
    for k, (r, b) in enumerate(grid):
        plan = LayerPlan(tuple(LayerSetting(key, r if (key != last or structured_applies(model, name, cfg.base)) else 0.0, b)
                               for name, key in keys.items()))
        rows.append({"prune": r, "bits": b, **measure_plan(model, ref, data, cfg.base, plan, cfg.method)})
        report((k + 1) / len(grid), f"{k + 1} of {len(grid)} uniform settings")
    return pd.DataFrame(rows)


def best_uniform_at_size(uniform: pd.DataFrame, size_bits: float) -> dict | None:
    """The most accurate uniform setting no larger than `size_bits` (ties: the smaller), or None."""
    fits = uniform[uniform.size_bits <= size_bits]
    return None if fits.empty else fits.sort_values(["accuracy", "size_bits"], ascending=[False, True]).iloc[0].to_dict()


def smallest_uniform_meeting(uniform: pd.DataFrame, min_accuracy: float, min_explanation: float,
                             explanation: str = "spearman_abs") -> dict | None:
    """The smallest uniform setting that meets both floors (ties: the more accurate), or None."""
    ok = uniform[(uniform.accuracy >= min_accuracy - TINY) & (uniform[explanation] >= min_explanation - TINY)]
    return None if ok.empty else ok.sort_values(["size_bits", "accuracy"], ascending=[True, False]).iloc[0].to_dict()


def search_size(model: nn.Module, data: Dataset, cfg: SensitivityConfig, table: pd.DataFrame, target_bits: float,
                uniform: pd.DataFrame, refs: list | None = None, progress: Progress | None = None,
                sizes: dict | None = None) -> SearchResult:
    """Greedy per-layer pairs until the model fits `target_bits` (module docstring); the plan is then measured.

    uniform: `uniform_table`; sizes: `layer_options` (computed when None).
    """
    ref = (refs or references(model, data, cfg.sweep))[0]
    sizes, losses = sizes or layer_options(model, cfg), estimated_losses(table)
    current = {key: (0.0, 32) for key in sizes}
    fixed = sum_fixed_bits(model)
    cost = lambda key, pair: losses[key][pair][0] + 1e-3 * losses[key][pair][1]  # noqa: E731 (accuracy first)
    steps = []
    while fixed + sum(sizes[k][p] for k, p in current.items()) > target_bits:
        moves = _moves(current, sizes, cost, set())
        if not moves:
            break
        _, key, pair = moves[0]
        current[key] = pair
        steps.append({"layer": key, "prune": pair[0], "bits": pair[1],
                      "size_bits": fixed + sum(sizes[k][p] for k, p in current.items()), "kept": True})
    plan = _plan(current)
    figures = measure_plan(model, ref, data, cfg.base, plan, cfg.method)
    if progress:
        progress(1.0, "plan measured")
    return SearchResult(plan, figures, figures["size_bits"] <= target_bits,
                        best_uniform_at_size(uniform, max(target_bits, figures["size_bits"])), pd.DataFrame(steps), uniform)


def sum_fixed_bits(model: nn.Module) -> int:
    """Bits of the parameters outside prunable layers (fp32), which no plan changes."""
    inside = sum(p.numel() for _, m in prunable_layers(model) for p in m.parameters(recurse=False))
    return 32 * (sum(p.numel() for p in model.parameters()) - inside)


def search_constraints(model: nn.Module, data: Dataset, cfg: SensitivityConfig, table: pd.DataFrame,
                       max_drop: float, min_explanation: float, uniform: pd.DataFrame,
                       explanation: str = "spearman_abs", refs: list | None = None,
                       progress: Progress | None = None, max_evals: int = MAX_EVALS,
                       sizes: dict | None = None) -> SearchResult:
    """The smallest plan found whose MEASURED accuracy >= original - max_drop (fractions) and explanation >= min.

    Greedy with a measurement per move (module docstring); at most `max_evals` moves are measured.
    uniform: `uniform_table`; sizes: `layer_options` (computed when None).
    """
    ref = (refs or references(model, data, cfg.sweep))[0]
    sizes, losses = sizes or layer_options(model, cfg), estimated_losses(table, explanation)
    floor = ref.evaluation.accuracy - max_drop
    budget_acc, budget_expl = max(max_drop, 1e-3), max(1.0 - min_explanation, 1e-3)
    cost = lambda key, pair: losses[key][pair][0] / budget_acc + losses[key][pair][1] / budget_expl  # noqa: E731
    current = {key: (0.0, 32) for key in sizes}
    figures = measure_plan(model, ref, data, cfg.base, LayerPlan(), cfg.method)
    refused: set[tuple[str, Pair]] = set()
    steps, report = [], progress or (lambda f, m: None)
    while len(steps) < max_evals and (moves := _moves(current, sizes, cost, refused)):
        _, key, pair = moves[0]
        trial = {**current, key: pair}
        measured = measure_plan(model, ref, data, cfg.base, _plan(trial), cfg.method)
        kept = measured["accuracy"] >= floor - TINY and measured[explanation] >= min_explanation - TINY
        steps.append({"layer": key, "prune": pair[0], "bits": pair[1], "size_bits": measured["size_bits"],
                      "accuracy": measured["accuracy"], "explanation": measured[explanation], "kept": kept})
        if kept:
            current, figures = trial, measured
        else:
            refused.add((key, pair))
        report(len(steps) / max_evals, f"{len(steps)} moves measured, {sum(s['kept'] for s in steps)} kept")
    baseline = smallest_uniform_meeting(uniform, floor, min_explanation, explanation)
    return SearchResult(_plan(current), figures, True, baseline, pd.DataFrame(steps), uniform)
