"""The units structured pruning removes: output channels, coupled across layers where the model says so.

A unit is one output neuron (Linear row) or filter (Conv2d) of a prunable layer, except that some
channels are made by several layers at once. In a residual block, relu(x + conv2(...)), channel c
of the block's output is channel c of x AND filter c of conv2: zeroing only one of them leaves the
channel alive. A depthwise conv has one filter per input channel: removing channel c of the layer
before it removes depthwise filter c too. Such layers are COUPLED: their filter j is one unit, and
structured pruning zeroes all of them together. A model declares its coupled layers as a class
attribute `coupled_channels` (tuples of layer names; models/resnet.py, models/separable.py); the
test suite checks the declarations against Torch-Pruning's dependency graph, which derives them
from a trace (declared, not traced here: a slider move must not trace the model).

Only the producers' output rows are zeroed (the weights counted by `prune_amount`), as for every
other model: the inputs of the next layer stay, and a removed unit still passes its bias on.

APoZ (Hu et al. 2016, "Network Trimming"): the average percentage of zeros of a unit's output after
its ReLU, over calibration images; a unit that rarely fires (high APoZ) matters little. The ReLU of
a layer is the nn.ReLU module registered right after it (the rule Grad-CAM's layer choice uses:
core/explain/attribution.py); for a coupled unit, the mean over its layers' ReLUs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.layers import prunable_layers

BATCH = 256  # calibration images per forward pass when measuring APoZ


@dataclass(frozen=True)
class UnitGroup:
    """Layers whose output channel j is one and the same unit j (one layer when nothing is coupled)."""

    layers: tuple[str, ...]
    count: int   # units (channels) of the group
    size: int    # weights one unit holds: the sum of its rows in every layer of the group


def unit_groups(model: nn.Module) -> list[UnitGroup]:
    """Every prunable layer but the last (its units are the classes) in exactly one group, in forward order.

    Declared couplings whose layers are missing (e.g. a layer factored by an earlier step into a
    Sequential: its last prunable sublayer makes the channels) resolve to the layer that makes them.
    """
    layers = prunable_layers(model)
    if len(layers) < 2:
        return []
    modules = dict(model.named_modules())
    units = dict(layers[:-1])
    order = {name: i for i, (name, _) in enumerate(layers)}
    grouped: dict[str, tuple[str, ...]] = {}
    for declared in getattr(model, "coupled_channels", ()):
        names = tuple(sorted({_producer(modules, d) for d in declared} & units.keys(), key=order.get))
        if len(names) < 2:
            continue  # nothing left to couple
        if len({units[n].weight.shape[0] for n in names}) != 1:
            raise ValueError(f"coupled layers {declared} must have the same number of output channels")
        for name in names:
            grouped[name] = names
    groups = {grouped.get(name, (name,)) for name in units}
    return [UnitGroup(g, units[g[0]].weight.shape[0], sum(units[n].weight[0].numel() for n in g))
            for g in sorted(groups, key=lambda g: order[g[0]])]


def _producer(modules: dict[str, nn.Module], name: str) -> str:
    """The prunable layer that makes the channels of module `name` (itself, or the last one inside it)."""
    module = modules.get(name)
    if module is None or isinstance(module, (nn.Linear, nn.Conv2d)):
        return name
    inner = prunable_layers(module)
    return f"{name}.{inner[-1][0]}" if inner else name


def weight_scores(model: nn.Module, groups: list[UnitGroup]) -> list[Tensor]:
    """Per group, each unit's mean |w| over all its rows (the L1 norm / fan-in of a single layer's row)."""
    layers = dict(prunable_layers(model))
    return [sum(layers[n].weight.detach().abs().flatten(1).sum(1) for n in g.layers) / g.size for g in groups]


def relu_after(model: nn.Module) -> dict[str, str]:
    """Prunable layer name -> the nn.ReLU module registered right after it, for layers that have one."""
    named = list(model.named_modules())
    found = {}
    for (name, module), (after, follower) in zip(named, named[1:]):
        if isinstance(module, (nn.Linear, nn.Conv2d)) and isinstance(follower, nn.ReLU):
            found[name] = after
    return found


def apoz(model: nn.Module, images: Tensor, groups: list[UnitGroup]) -> list[Tensor]:
    """Per group, each unit's APoZ in [0, 1]: the share of its ReLU outputs that are exactly 0 over
    `images` (every image and position), averaged over the group's layers that have a ReLU.

    Units with no ReLU after any of their layers get 0 (they never "switch off": ranked last).
    Runs on an eval copy (hooks on a shared model would fire in other sessions' threads).
    """
    twin = copy.deepcopy(model).eval()
    sites = relu_after(twin)
    modules = dict(twin.named_modules())
    zeros: dict[str, Tensor] = {}
    outputs: dict[str, int] = {}
    for layer in {n for g in groups for n in g.layers if n in sites}:
        def count(_module, _inputs, output, layer=layer):
            dims = [d for d in range(output.dim()) if d != 1]  # all but the channel: images and positions
            zeros[layer] = zeros.get(layer, 0) + (output == 0).sum(dims).to(torch.float64)
            outputs[layer] = outputs.get(layer, 0) + output.numel() // output.shape[1]
        modules[sites[layer]].register_forward_hook(count)
    with torch.inference_mode():
        for batch in images.split(BATCH):
            twin(batch)
    return [_group_apoz(g, zeros, outputs) for g in groups]


def _group_apoz(group: UnitGroup, zeros: dict[str, Tensor], outputs: dict[str, int]) -> Tensor:
    shares = [zeros[n] / outputs[n] for n in group.layers if n in zeros]
    if not shares:
        return torch.zeros(group.count)
    return (sum(shares) / len(shares)).to(torch.float32)
