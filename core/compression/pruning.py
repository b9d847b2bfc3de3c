"""Pruning: weights or whole units of a copy set to exactly zero (registered step "prune").

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
  all layers, the last included (as in Han et al. 2015). Coupled channels (a residual
  stream, a depthwise conv's inputs: core/compression/units.py) are one unit across their
  layers, ranked by the mean |w| of all its rows, removed together; "layer" scope then means
  every group of coupled layers loses the same share of its units.
- "apoz": structured as above (same units, same rate, scopes and limit), but the units ranked by
  how rarely they fire: the highest APoZ first (average percentage of zeros after the unit's
  ReLU over the calibration images, Hu et al. 2016), ties by mean |w|. Units without a ReLU after
  them have APoZ 0: last. Measured once per original model (`context.memo`).
- After low-rank factorization the weights pruned are the two factors of each factored layer
  (`core.layers.stored_layers`): they are what is stored. Structured methods remove a factored
  layer's unit by zeroing the row of its second factor.
- `prune_amount` 0 skips pruning; 1.0 zeroes every prunable weight (unstructured) or
  every unit but the classes (structured); the model still runs on its biases.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from core.compression import units
from core.compression.steps import Context, Step, control, register
from core.layers import prunable_layers, stored_layers

PRUNE_METHODS = ("magnitude", "random", "structured", "apoz")
PRUNE_SCOPES = ("global", "layer")

Layers = list[tuple[str, nn.Module]]
Ranking = tuple[list[units.UnitGroup], list[tuple[Tensor, ...]]]  # groups, their order keys
STRUCTURED = ("structured", "apoz")  # methods that remove whole units
PRUNE_HELP = ("Share of the weights (of Linear and Conv layers; biases stay) set to exactly zero, for every "
              "method. *Structured* removes whole neurons or filters, the weakest first, until that share is "
              "reached as nearly as whole units allow; it never removes the output classes, so it stops "
              "short of 100 %. The caption below says how many weights are zero in the compressed model.")
METHOD_HELP = ("*Magnitude*: the smallest weights. *Random*: any weights (a baseline). *Structured*: whole "
               "neurons or filters with the smallest weights. *By activations (APoZ)*: whole neurons or filters "
               "whose output is most often zero after their ReLU on training images (Hu et al. 2016): units "
               "that rarely fire go first. Channels joined by a skip connection, or read by a depthwise "
               "filter, are removed together.")


@register("prune", order=20)
@dataclass(frozen=True)
class Prune(Step):
    """Set a share of the prunable weights to exactly zero: by magnitude, at random, or whole units."""

    title = "Pruning"
    off_words = "no pruning"
    always_open = True
    summary = "Weights set to exactly zero: the smallest, random ones, or whole neurons and filters."

    prune_amount: float = control(0.0, label="Pruning rate", url="prune", widget="slider", low=0, high=100,
                                  step=1, scale=100, format="%d%%", main=True, stops=tuple(range(0, 101, 5)), unit=" %",
                                  help=PRUNE_HELP)
    prune_method: str = control("magnitude", label="Pruning method", url="method", choices=PRUNE_METHODS,
                                labels={"magnitude": "Magnitude (smallest |w|)", "random": "Random",
                                        "structured": "Structured (whole neurons / filters)",
                                        "apoz": "By activations (APoZ: filters that rarely fire)"},
                                help=METHOD_HELP)
    prune_scope: str = control("global", label="Pruning scope", url="scope", choices=PRUNE_SCOPES,
                               horizontal=True,
                               labels={"global": "Global (one threshold)", "layer": "Per layer (same rate each)"},
                               help="Global: one threshold for the whole network. Per layer: every layer "
                                    "loses the same share.")
    seed: int = 0  # only used by random pruning; not a control (every seed of a population is a model)

    def active(self) -> bool:
        return float(self.prune_amount) > 0.0

    def describe(self) -> str:
        if self.prune_method == "apoz":
            return f"{self.prune_amount:.0%} pruning by activations (APoZ, {self.prune_scope})"
        return f"{self.prune_amount:.0%} {self.prune_method} pruning ({self.prune_scope})"

    def sweep_points(self) -> tuple[dict[str, Any], ...]:
        return tuple({"prune_amount": a} for a in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99))

    def apply(self, model: nn.Module, context: Context) -> None:
        if prunable_layers(model):
            _prune(model, self, context)


def _prune(model: nn.Module, cfg: Prune, context: Context) -> None:
    """Prune the prunable layers of a copy in place and make the pruning permanent."""
    # float(): an int amount means "that many weights" to torch.nn.utils.prune.
    amount = float(cfg.prune_amount)
    layers = stored_layers(model)  # a factored layer's two factors (core.layers), else the layers themselves
    orders = [list(module._parameters) for _, module in layers]
    if cfg.prune_method in STRUCTURED:
        _prune_structured(model, amount, cfg.prune_scope, _unit_ranking(model, cfg.prune_method, context))
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
    sizes = [m.weight.numel() for _, m in stored_layers(model)]
    return (sum(sizes) - sizes[-1]) / sum(sizes) if len(sizes) > 1 else 0.0


def _unit_ranking(model: nn.Module, method: str, context: Context) -> Ranking:
    """The unit groups of `model` and, per group, its units' pruning order keys (smallest first)."""
    groups = units.unit_groups(model)
    weights = units.weight_scores(model, groups)
    if method == "structured":
        return groups, [(w,) for w in weights]
    activity = _apoz(model, groups, context)
    return groups, [(-a, w) for a, w in zip(activity, weights)]  # most zeros first, then the weakest


def _apoz(model: nn.Module, groups: list[units.UnitGroup], context: Context) -> list[Tensor]:
    """APoZ per unit: of the original model, once (memo), when `model` has its layers; else of `model`."""
    def shape(m: nn.Module) -> tuple:
        return tuple((name, tuple(layer.weight.shape)) for name, layer in prunable_layers(m))
    images = context.calibration()
    if shape(model) != shape(context.original):  # an earlier step refactored the layers: measure the copy
        return units.apoz(model, images, groups)
    return context.memo(("apoz", tuple(images.shape)), lambda: units.apoz(context.original, images, groups))


def _order(keys: tuple[Tensor, ...]) -> Tensor:
    """Indices sorting units by keys[0], ties by keys[1], ... (stable: ties keep forward order)."""
    order = torch.arange(len(keys[0]))
    for key in reversed(keys):
        order = order[torch.argsort(key[order], stable=True)]
    return order


def _prune_structured(model: nn.Module, amount: float, scope: str, ranking: Ranking) -> None:
    """Whole units of every layer but the last, until about amount * (all prunable weights) are zero."""
    groups, keys = ranking
    if not groups:
        return
    layers = prunable_layers(model)
    target = round(amount * sum(m.weight.numel() for _, m in layers))
    if scope == "layer":  # every group loses the same share of its units
        share = min(1.0, target / sum(g.count * g.size for g in groups))
        removed = [_order(k)[:round(share * g.count)] for g, k in zip(groups, keys)]
    else:
        flat = tuple(torch.cat(parts) for parts in zip(*keys))
        sizes = torch.cat([torch.full((g.count,), g.size) for g in groups])
        order = _order(flat)
        total = torch.cat([torch.zeros(1, dtype=sizes.dtype), sizes[order].cumsum(0)])
        count = int((total - target).abs().argmin())  # the nearest reachable total (first of a tie: fewer)
        starts = torch.tensor([0, *[g.count for g in groups]]).cumsum(0)
        chosen = order[:count]
        removed = [chosen[(chosen >= lo) & (chosen < hi)] - lo for lo, hi in zip(starts[:-1], starts[1:])]
    # A factored layer (low-rank) loses a unit as the row of its second factor, which makes that output.
    modules = {name: getattr(module, "second", module) for name, module in layers}
    for group, gone in zip(groups, removed):
        for name in group.layers:
            weight = modules[name].weight
            keep = torch.ones(weight.shape[0], dtype=weight.dtype)
            keep[gone] = 0.0
            mask = keep.view(-1, *([1] * (weight.dim() - 1))).expand_as(weight)
            prune.custom_from_mask(modules[name], "weight", mask)
