"""Which layers of a model are compressed, named the same way everywhere."""
from __future__ import annotations

import torch
from torch import nn

PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs whose `weight` is pruned and quantized, in forward order.

    Only the weights of Linear and Conv2d layers count toward sparsity and bit width;
    biases stay in fp32 and unpruned (they are under 1 % of the parameters here).
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def is_conv(module: nn.Module) -> bool:
    """True for convolution layers (Grad-CAM and filter-grid heatmaps need them)."""
    return isinstance(module, nn.Conv2d)


def layer_labels(model: nn.Module) -> dict[str, str]:
    """Readable names of the prunable layers, e.g. {"0": "conv 1 (6×1×5×5)", "7": "fc 1 (120×784)"}."""
    found = prunable_layers(model)
    names = labels_for([(is_conv(m), tuple(m.weight.shape)) for _, m in found])
    return {name: label for (name, _), label in zip(found, names)}


def labels_for(layers: list[tuple[bool, tuple[int, ...]]]) -> list[str]:
    """The readable names of layers given as (is conv, weight shape), in forward order: "conv 1 (6×1×5×5)"."""
    labels, counts = [], {"conv": 0, "fc": 0}
    for conv, shape in layers:
        kind = "conv" if conv else "fc"
        counts[kind] += 1
        labels.append(f"{kind} {counts[kind]} ({'×'.join(str(s) for s in shape)})")
    return labels


def weight_of(model: nn.Module, name: str):
    """The weight tensor of the prunable layer called `name`, as float32 (shared: do not modify it).

    A model computed in fp16 or bf16 (core.compression.activations) holds its weights in that dtype;
    figures read them as float32 (exact: both are subsets of fp32)."""
    return dict(prunable_layers(model))[name].weight.detach().to(torch.float32)
