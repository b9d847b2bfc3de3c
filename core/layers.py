"""Which layers of a model are compressed, named the same way everywhere.

A low-rank step (core/compression/lowrank.py) replaces a Linear or Conv2d by a *factored* layer
that keeps the original's name: `FactoredLinear` (Linear(in, r, bias=False) then Linear(r, out))
or `FactoredConv2d` (a k×k Conv(in, r) with the original's stride and padding, no bias, then a
1×1 Conv(r, out) with the bias). So there are two views of a model's layers:

- `prunable_layers`: one entry per layer of the ORIGINAL architecture, by its original name; a
  factored layer is listed as itself, and its `weight` is the effective weight U_r S_r V_rᵀ in the
  original's shape (for display and for pairing the original's layers with the compressed ones).
- `stored_layers`: the Linear/Conv2d modules whose weights are stored, the factors in place of
  their factored layer ("7.first", "7.second"). Steps that CHANGE weights (pruning, quantization,
  fine-tuning) work on these: a factored layer's effective weight is computed, never stored.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)


class FactoredLinear(nn.Module):
    """Linear(in, out) as `second(first(x))`: first = Linear(in, r, bias=False), second = Linear(r, out)."""

    def __init__(self, first: nn.Linear, second: nn.Linear) -> None:
        super().__init__()
        self.first, self.second = first, second

    @property
    def in_features(self) -> int:
        return self.first.in_features

    @property
    def out_features(self) -> int:
        return self.second.out_features

    @property
    def rank(self) -> int:
        return self.first.out_features

    @property
    def weight(self) -> Tensor:
        """The effective weight second.weight @ first.weight, (out, in): computed, read only."""
        return (self.second.weight @ self.first.weight).detach()

    @property
    def bias(self) -> Tensor | None:
        return self.second.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.second(self.first(x))


class PointwiseConv2d(nn.Conv2d):
    """A 1×1 convolution (stride 1, no padding, groups 1) computed as a product over channels.

    The same numbers as nn.Conv2d (it is one: pruning, quantization and hooks treat it as such),
    written by hand only because torch's CPU convolution is slow for 1×1 kernels over few channels:
    2 → 6 channels on 256 images of 28×28 measured about 12 ms, this einsum about 1 ms.
    """

    def forward(self, x: Tensor) -> Tensor:
        out = torch.einsum("oc,nchw->nohw", self.weight.flatten(1), x)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class FactoredConv2d(nn.Module):
    """Conv2d(in, out, k) as `second(first(x))`: first = Conv2d(in, r, k) with the original's stride,
    padding and dilation and no bias, second = Conv2d(r, out, 1) with the bias (AIMET's weight SVD)."""

    def __init__(self, first: nn.Conv2d, second: nn.Conv2d) -> None:
        super().__init__()
        self.first, self.second = first, second

    @property
    def in_channels(self) -> int:
        return self.first.in_channels

    @property
    def out_channels(self) -> int:
        return self.second.out_channels

    @property
    def rank(self) -> int:
        return self.first.out_channels

    @property
    def weight(self) -> Tensor:
        """The effective weight (out, in, k, k) of the pair: second (out, r) @ first (r, in·k·k)."""
        first = self.first.weight.flatten(1)
        return (self.second.weight.flatten(1) @ first).view(-1, *self.first.weight.shape[1:]).detach()

    @property
    def bias(self) -> Tensor | None:
        return self.second.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.second(self.first(x))


FACTORED_TYPES = (FactoredLinear, FactoredConv2d)


def is_factored(module: nn.Module) -> bool:
    """True for a layer a low-rank step factored into two."""
    return isinstance(module, FACTORED_TYPES)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs of the original architecture's Linear and Conv2d layers, in forward order.

    A factored layer stands in for the layer it replaced (same name; its `weight` is the effective
    weight, computed: change weights through `stored_layers`). Only the weights of these layers count
    toward sparsity and bit width; biases stay in fp32 and unpruned (under 1 % of the parameters here).
    """
    found, inside = [], None
    for name, m in model.named_modules():
        if inside is not None and name.startswith(inside):
            continue  # the factors of a factored layer listed above
        if is_factored(m):
            found.append((name, m))
            inside = f"{name}."
        elif isinstance(m, PRUNABLE_TYPES):
            found.append((name, m))
    return found


def stored_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Linear/Conv2d modules whose weights are stored, in forward order: the layers of
    `prunable_layers`, a factored one replaced by its two factors (".first", ".second").
    These are the layers pruning, quantization and fine-tuning change."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def factors(module: nn.Module) -> list[nn.Module]:
    """The stored layers of one prunable layer: its two factors, or the layer itself."""
    return [module.first, module.second] if is_factored(module) else [module]


def is_conv(module: nn.Module) -> bool:
    """True for convolution layers, factored ones too (Grad-CAM and filter-grid heatmaps need them)."""
    return isinstance(module, (nn.Conv2d, FactoredConv2d))


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


def layer_keys(model: nn.Module) -> dict[str, str]:
    """Short names of the prunable layers for links and plans, e.g. {"0": "conv1", "7": "fc1"}."""
    found = prunable_layers(model)
    labels = labels_for([(is_conv(m), tuple(m.weight.shape)) for _, m in found])
    return {name: label.split(" (")[0].replace(" ", "") for (name, _), label in zip(found, labels)}


def weight_of(model: nn.Module, name: str) -> Tensor:
    """The weight tensor of the prunable layer called `name`, as float32 (a factored layer's effective
    weight; shared otherwise: do not modify it).

    A model computed in fp16 or bf16 (core.compression.activations) holds its weights in that dtype;
    figures read them as float32 (exact: both are subsets of fp32)."""
    return dict(prunable_layers(model))[name].weight.detach().to(torch.float32)


def rank_of(module: nn.Module) -> int | None:
    """The rank a factored layer keeps; None for a dense layer."""
    return module.rank if is_factored(module) else None
