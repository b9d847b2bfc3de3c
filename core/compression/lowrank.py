"""Low-rank factorization: each layer's weight replaced by a truncated SVD, as two thinner layers
(registered step "lowrank").

A Linear weight W (out × in), or a Conv2d weight (out, in, k, k) read as the matrix out × (in·k·k),
is W = U S Vᵀ (`torch.linalg.svd`, full_matrices=False). Keeping the r largest singular values gives
W_r = U_r S_r V_rᵀ, the best rank-r approximation in Frobenius norm, with error √(Σ_{i>r} σ_i²)
(Eckart–Young, REFERENCE §10). The layer becomes two (core.layers.FactoredLinear / FactoredConv2d,
under the original's name): first = √S_r V_rᵀ (Linear(in, r, bias=False), or a k×k Conv(in, r) with
the original's stride, padding and dilation and no bias), second = U_r √S_r (Linear(r, out), or a
1×1 Conv(r, out)) with the original bias. √S on both sides keeps the two factors on one scale for
the steps after this one (pruning, quantization act on the factors). Weights: r·(in + out) for a
Linear, r·(in·k·k + out) for a conv; MACs per sample: r·(in + out), or positions·(r·in·k·k + out·r).

Which r:
- mode "energy": the smallest r whose σ_1² + ... + σ_r² is at least `rank_kept` of Σσ²
  (the squared Frobenius norm, the weight's "energy"); mode "fraction": the smallest r with
  r ≥ rank_kept · R, R = min(out, in·k·k) the full rank.
- scope "layer": that rule in every layer. Scope "global": one threshold for the whole network,
  every layer's σ² ranked together (as global pruning ranks |w|): the largest ones are kept until
  `rank_kept` of the network's total energy (or of all its singular values) is reached.
- Every layer keeps at least rank 1 (a layer of rank 0 would cut the network). A layer whose
  factors would hold at least as many weights as it does (r·(in + out) ≥ in·out) stays dense:
  factoring it would make it bigger. `rank_kept` 1.0 is off: the model is not touched.

The SVDs are computed once per trained model (`Context.memo`): a slider move only truncates.
Grouped convolutions (groups > 1) are left dense.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from core.compression.steps import Context, Step, control, register
from core.layers import FactoredConv2d, FactoredLinear, PointwiseConv2d, prunable_layers

RANK_MODES = ("energy", "fraction")
RANK_SCOPES = ("layer", "global")
RANK_HELP = ("Each layer's weight matrix is replaced by two thinner ones (a truncated SVD). Energy: keep "
             "the fewest singular values whose squares add up to this share of the layer's total (its "
             "squared Frobenius norm). Rank: keep this share of each layer's singular values. 1.00 is off. "
             "Every layer keeps at least rank 1; a layer whose two factors would not be smaller stays dense.")

# Scrub stops of the share kept: coarse where accuracy has long gone, fine near 1 where it changes.
RANK_STOPS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
SVD = tuple[Tensor, Tensor, Tensor]  # U (out, R), S (R,), Vh (R, in·k·k) of one layer


@register("lowrank", order=10)
@dataclass(frozen=True)
class LowRank(Step):
    """Factor every Linear and Conv2d layer into two by a truncated SVD of its weight."""

    title = "Low-rank"
    summary = "Each layer's weight matrix replaced by two thinner ones (a truncated SVD): fewer weights and MACs."

    rank_kept: float = control(1.0, label="Low-rank: share kept", url="rank", widget="slider", low=0.05,
                               high=1.0, step=0.01, format="%.2f", help=RANK_HELP, stops=RANK_STOPS,
                               stop_labels={1.0: "1.00 (off)"})
    rank_mode: str = control("energy", label="Low-rank: keep", url="rank_mode", choices=RANK_MODES,
                             horizontal=True, labels={"energy": "Energy (Σσ²)", "fraction": "Rank"},
                             help="Energy: the share of the squared singular values kept. Rank: the share of "
                                  "the singular values themselves (of the full rank min(out, in·k·k)).")
    rank_scope: str = control("layer", label="Low-rank scope", url="rank_scope", choices=RANK_SCOPES,
                              horizontal=True, labels={"layer": "Per layer", "global": "Global (one threshold)"},
                              help="Per layer: every layer keeps that share. Global: one threshold on the "
                                   "singular values of the whole network, so layers with little energy in "
                                   "their tail lose more rank.")

    def active(self) -> bool:
        return float(self.rank_kept) < 1.0

    def describe(self) -> str:
        what = "energy" if self.rank_mode == "energy" else "rank"
        scope = "per layer" if self.rank_scope == "layer" else "global"
        return f"low-rank ({round(100 * float(self.rank_kept), 1):g}% of the {what} kept, {scope})"

    def sweep_points(self) -> tuple[dict[str, Any], ...]:
        return tuple({"rank_kept": e} for e in (0.999, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.7, 0.5, 0.3))

    def problems(self) -> list[str]:
        if float(self.rank_kept) <= 0.0:
            return ["A rank of 0 would cut every layer off: each layer keeps at least rank 1."]
        return []

    def notes(self) -> list[str]:
        return ["Every layer keeps at least rank 1. A layer whose two factors would hold as many weights as "
                "it does stays dense; \"Layer by layer\" on the Overview shows each layer's rank."]

    def apply(self, model: nn.Module, context: Context) -> None:
        names = [name for name, m in prunable_layers(model) if _factorable(m)]
        svds = context.memo(("lowrank-svd", tuple(names)), lambda: layer_svds(context.original, names))
        ranks = truncation_ranks([svds[n][1] for n in names], float(self.rank_kept), self.rank_mode,
                                 self.rank_scope)
        modules = dict(model.named_modules())
        for name, rank in zip(names, ranks):
            factored = factor_layer(modules[name], svds[name], rank)
            if factored is not None:
                _replace(model, name, factored)


def _factorable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


def layer_svds(model: nn.Module, names: list[str]) -> dict[str, SVD]:
    """The thin SVD (U, S, Vh) of each named layer's weight as a matrix out × (in·k·k); model only read."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        return {name: torch.linalg.svd(modules[name].weight.detach().flatten(1), full_matrices=False)
                for name in names}


def truncation_ranks(spectra: list[Tensor], kept: float, mode: str = "energy", scope: str = "layer") -> list[int]:
    """The rank r kept by each layer, given its singular values (descending), as the module docstring says.

    Always 1 <= r <= len(S); `kept` >= 1 keeps every rank, `kept` <= 0 keeps rank 1 (never an error).
    """
    if mode not in RANK_MODES or scope not in RANK_SCOPES:
        raise ValueError(f"mode must be one of {RANK_MODES} and scope one of {RANK_SCOPES}")
    if kept >= 1.0:
        return [len(s) for s in spectra]
    if scope == "layer":
        return [_kept_count(s.double() ** 2 if mode == "energy" else torch.ones(len(s)), kept) for s in spectra]
    energy = torch.cat([s.double() ** 2 for s in spectra])
    owner = torch.cat([torch.full((len(s),), i) for i, s in enumerate(spectra)])
    order = torch.argsort(energy, descending=True, stable=True)
    count = _kept_count(energy[order] if mode == "energy" else torch.ones(len(energy)), kept)
    chosen = torch.bincount(owner[order[:count]], minlength=len(spectra))
    return [max(1, int(c)) for c in chosen]


def _kept_count(weights: Tensor, kept: float) -> int:
    """The fewest leading entries of `weights` (in the given order) whose sum reaches `kept` of the total;
    at least 1. A tiny tolerance keeps rounding in the cumulative sum from asking for one more."""
    total = float(weights.sum())
    if total <= 0.0:
        return 1
    share = weights.cumsum(0) / total
    return max(1, min(len(weights), int(torch.searchsorted(share, torch.tensor(kept - 1e-12, dtype=share.dtype))) + 1))


def factor_layer(layer: nn.Module, svd: SVD, rank: int) -> nn.Module | None:
    """The factored replacement of `layer` at `rank` (new modules; `layer` is only read), or None when
    the two factors would hold at least as many weights as the layer (it stays dense)."""
    u, s, vh = svd
    out, inner = u.shape[0], vh.shape[1]
    rank = max(1, min(int(rank), len(s)))
    if rank * (out + inner) >= out * inner:
        return None
    root = s[:rank].sqrt()
    first_w, second_w = root[:, None] * vh[:rank], u[:, :rank] * root[None, :]  # (r, in·k·k), (out, r)
    weight, bias = layer.weight, layer.bias
    if isinstance(layer, nn.Conv2d):
        first = nn.Conv2d(layer.in_channels, rank, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                          dilation=layer.dilation, bias=False, padding_mode=layer.padding_mode)
        second = PointwiseConv2d(rank, out, 1, bias=bias is not None)
        shapes = ((rank, *weight.shape[1:]), (out, rank, 1, 1))
        factored: nn.Module = FactoredConv2d(first, second)
    else:
        first, second = nn.Linear(inner, rank, bias=False), nn.Linear(rank, out, bias=bias is not None)
        shapes = ((rank, inner), (out, rank))
        factored = FactoredLinear(first, second)
    factored.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        first.weight.copy_(first_w.reshape(shapes[0]))
        second.weight.copy_(second_w.reshape(shapes[1]))
        if bias is not None:
            second.bias.copy_(bias)
    factored.requires_grad_(weight.requires_grad)
    return factored.train(layer.training)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
