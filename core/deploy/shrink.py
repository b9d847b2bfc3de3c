"""Structured pruning that really shrinks the model: removed units and filters are cut out.

`core.compression.compress` with prune_method "structured" zeroes whole rows (Linear units,
Conv2d filters) but keeps them: the masked model is as large and as slow as the dense one.
`shrink` cuts those rows out of a copy with Torch-Pruning's dependency graph, so the inputs
coupled to them (the next layer's columns, and through a Flatten the 7x7 block of features of
a removed filter) follow, and returns a smaller dense model that computes the same function.

Why more than `tp` alone: a removed unit still has its bias, so in the masked model it outputs
a constant (ReLU(b), pooled), which the next layer adds to every sample. Torch-Pruning would
drop it and change the answers. Before cutting, that constant contribution is computed through
the consumer layer (which is linear) and folded in: into the consumer's bias when it is the same
at every position (a Linear consumer, or a conv without padding effects), else as a fixed
additive map (`ShiftedLayer`): a padded conv sees the constant plane through its zero border,
so the contribution differs at the edges. Both are exact up to float rounding (the test holds
the logits to 1e-5 of the masked model's).

The classifier (last prunable layer) keeps all its outputs. A layer whose every unit was removed
keeps one (its output is a constant either way), so the shrunk model stays a valid network.
Nothing given is modified (`copy.deepcopy` first; hooks only ever go on the copy).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import Tensor, nn

from core.compression import CompressionConfig, compress
from core.layers import prunable_layers
from core.metrics import layer_stats, parameter_count

# Relative spread under which a conv consumer's folded contribution counts as one value per channel.
_UNIFORM = 1e-6


class ShiftedLayer(nn.Module):
    """`layer(x) + shift`: a layer with the fixed contribution of removed inputs folded in.

    shift (1, C_out, H, W) is a buffer (a constant of the network, not a trained parameter);
    it exports to ONNX as one Add.
    """

    def __init__(self, layer: nn.Module, shift: Tensor) -> None:
        super().__init__()
        self.layer = layer
        self.register_buffer("shift", shift)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x) + self.shift


def empty_units(model: nn.Module) -> dict[str, list[int]]:
    """Per prunable layer but the last, the output units whose weights are all zero (kept: one at least)."""
    found = {}
    for name, module in prunable_layers(model)[:-1]:
        rows = module.weight.detach().flatten(1)
        empty = torch.nonzero(~rows.ne(0).any(1)).flatten().tolist()
        if len(empty) == rows.shape[0]:
            empty = empty[1:]  # keep unit 0: a layer with no output would break the network
        if empty:
            found[name] = empty
    return found


def shrink(model: nn.Module, cfg: CompressionConfig, input_shape: tuple[int, ...]) -> nn.Module:
    """The compressed model (`compress(model, cfg)`) with its empty units cut out; `model` is untouched.

    input_shape (C, H, W). For structured pruning the result is a smaller dense model (eval mode,
    no grad) that gives the masked model's outputs; for other settings it usually has the same
    shapes (a mask removes no whole unit).
    """
    return cut_empty_units(compress(model, cfg), input_shape)


def cut_empty_units(masked: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """A copy of `masked` without its all-zero units, their constant output folded into the next layer."""
    # requires_grad on the copy: Torch-Pruning traces the graph through autograd.
    net = copy.deepcopy(masked).eval().requires_grad_(True)
    names = dict(prunable_layers(net))
    removed = empty_units(net)
    if not removed:
        return net.requires_grad_(False)
    example = torch.zeros(1, *input_shape)
    inputs = _layer_inputs(net, example)
    graph = tp.DependencyGraph().build_dependency(net, example_inputs=example, verbose=False)
    shifts: dict[nn.Module, Tensor] = {}
    with torch.no_grad():
        for name, units in removed.items():  # every contribution first, while all weights are whole
            for consumer, columns in _consumers(graph, names[name], units):
                shifts[consumer] = shifts.get(consumer, 0) + _contribution(consumer, inputs[consumer], columns)
        for name, units in removed.items():
            graph.get_pruning_group(names[name], _out_fn(names[name]), idxs=units).prune()
        for consumer, shift in shifts.items():
            kept = _kept(consumer, removed, names)
            _fold(net, consumer, shift[:, kept])
    return net.requires_grad_(False)


def _out_fn(module: nn.Module):
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


def _consumers(graph: tp.DependencyGraph, module: nn.Module, units: list[int]) -> list[tuple[nn.Module, list[int]]]:
    """The layers whose inputs follow when `units` of `module` go, with the input indices that go."""
    group = graph.get_pruning_group(module, _out_fn(module), idxs=units)
    found = []
    for dep, idxs in group:
        target = dep.target.module
        if isinstance(target, (nn.Conv2d, nn.Linear)) and getattr(dep.handler, "__name__", "") == "prune_in_channels":
            found.append((target, [int(i) for i in idxs]))
    return found


def _layer_inputs(net: nn.Module, example: Tensor) -> dict[nn.Module, Tensor]:
    """The input of every prunable layer of `net` (our own copy) on `example`."""
    seen: dict[nn.Module, Tensor] = {}
    handles = [m.register_forward_pre_hook(lambda mod, args: seen.__setitem__(mod, args[0].detach().clone()))
               for _, m in prunable_layers(net)]
    try:
        with torch.no_grad():
            net(example)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _contribution(consumer: nn.Module, x: Tensor, columns: list[int]) -> Tensor:
    """What the input `columns` (channels of a conv, features of a Linear) of `x` add to the consumer's output.

    Those inputs come from removed units, so they are the same for every sample: the result is too.
    """
    only = torch.zeros_like(x)
    only[:, columns] = x[:, columns]
    if isinstance(consumer, nn.Linear):
        return F.linear(only, consumer.weight)
    return F.conv2d(only, consumer.weight, None, consumer.stride, consumer.padding, consumer.dilation, consumer.groups)


def _kept(consumer: nn.Module, removed: dict[str, list[int]], names: dict[str, nn.Module]) -> list[int]:
    """The consumer's output units that survive (it may have lost some of its own)."""
    gone = next((set(units) for name, units in removed.items() if names[name] is consumer), set())
    outputs = consumer.weight.shape[0] + len(gone)  # its size before its own pruning
    return [i for i in range(outputs) if i not in gone]


def _fold(net: nn.Module, consumer: nn.Module, shift: Tensor) -> None:
    """Add `shift` (1, C_out[, H, W]) to the consumer: into its bias if it is one value per channel."""
    if shift.dim() == 2 or _uniform(shift):
        per_channel = shift.flatten(2).mean(2)[0] if shift.dim() == 4 else shift[0]
        if consumer.bias is not None:
            consumer.bias.add_(per_channel)
            return
        shift = per_channel.view(1, -1, *([1] * (shift.dim() - 2)))
    parent, attr = _parent(net, consumer)
    setattr(parent, attr, ShiftedLayer(consumer, shift.contiguous()))


def _uniform(shift: Tensor) -> bool:
    flat = shift.flatten(2)
    spread = (flat - flat.mean(2, keepdim=True)).abs().max()
    return bool(spread <= _UNIFORM * max(float(flat.abs().max()), 1e-30))


def _parent(net: nn.Module, module: nn.Module) -> tuple[nn.Module, str]:
    for name, candidate in net.named_modules():
        if candidate is module:
            parent_name, _, attr = name.rpartition(".")
            return net.get_submodule(parent_name) if parent_name else net, attr
    raise ValueError("layer not found in the network")


def counts(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(MACs per sample, parameters) of `model` as it runs: every weight of its dense shape counts.

    MACs are those of the Overview (`core.metrics.layer_stats`: output positions x weights of each
    Linear/Conv2d; no bias adds or ReLUs, which `tp.utils.count_ops_and_params` adds: 716,938 for
    LeNet-5 against 693,000 here). A mask removes nothing in this count: a masked model counts as its
    dense shape, where the Overview's "remaining MACs" counts only the nonzero weights. The model is
    only read (output sizes come from a copy); buffers (a ShiftedLayer's shift) are not parameters.
    """
    macs = sum(s.dense_macs for s in layer_stats(model, tuple(input_shape)))
    return int(macs), parameter_count(model)
