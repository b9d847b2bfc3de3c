"""Running many one-layer variants of a model, sharing what they have in common (for `sensitivity`).

Each variant differs from the original in ONE layer's weight, so everything before that layer is the
original's. When the model is an nn.Sequential and the layer one of its top-level children (lenet5,
lenet300, mlp, mlp32, separable), the model splits into (layers before, the layer, layers after):

- evaluation: the original's input to every such layer is computed once per analysis on the test set
  (`layer_inputs`, one pass over the chunks for all layers), and each variant runs only the layer and
  what follows. The same operations on the same chunks as a whole forward: the same numbers (a
  convolution's chain on oneDNN tensors where `core.fast_inference.onednn_agrees` says so: also the same).
- maps (saliency, Gradient x Input): the layers before run forward once on the probes with their graph
  kept; per variant only the layer and what follows run forward, and the gradient goes back through the
  shared graph of the layers before (`gradient_maps`). The same backward operations in the same order as
  Captum's call on the whole model (tests/test_sensitivity_batch.py checks equality with `attribute`), but
  through a first convolution, whose input gradient is a flipped forward convolution (`input_gradient`:
  within FLIP_TOLERANCE, 3x faster on LeNet-5's conv1).

Other models (resnet_small: its layers sit inside residual blocks whose skip connection goes around them,
so there is no "layers before" module to run once) take the whole-model path, as do other methods.
"""
from __future__ import annotations

import copy
import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.explain.attribution import black
from core.fast_inference import MaxPool2x2, onednn_agrees, onednn_parts, onednn_threads, swappable
from core.layers import prunable_layers

CHUNK = 256               # rows per forward, as core.metrics.evaluate (same chunks: same numbers)
ACTIVATION_IMAGES = 256   # test images whose layer outputs give the activation SQNR
CACHE_BYTES = 256 * 2**20  # the test set's layer inputs kept for one analysis at most (else per layer)
GRADIENT_METHODS = ("saliency", "input_x_gradient")  # maps `gradient_maps` computes (checked against Captum)


def split(model: nn.Module, name: str, fast: bool = True) -> tuple[nn.Module, nn.Module, nn.Module] | None:
    """(layers before, the layer, layers after) when `name` is a top-level child of an nn.Sequential, else None.

    fast: plain 2x2 max poolings run as `MaxPool2x2` (inference only: same values, not the same gradient)."""
    if not isinstance(model, nn.Sequential):
        return None
    children = list(model.named_children())
    index = next((i for i, (child, _) in enumerate(children) if child == name), None)
    if index is None:
        return None
    modules = [m for _, m in children]
    before, after = (fast_chain(modules[:index]), fast_chain(modules[index + 1:])) if fast else \
        (modules[:index], modules[index + 1:])
    return nn.Sequential(*before), modules[index], nn.Sequential(*after)


def layer_inputs(model: nn.Module, names: list[str], x: Tensor) -> dict[str, list[Tensor]]:
    """The original's input to each layer of `names` that `split` handles, per chunk of CHUNK rows of x.

    One pass through the model's children for every layer at once (each chunk goes through the same
    modules as `split(model, name)[0]` would take it). Empty when the model is no nn.Sequential or the
    inputs would take more than CACHE_BYTES (callers then run each layer's prefix themselves).
    """
    wanted = {n for n in names if split(model, n) is not None}
    if not wanted:
        return {}
    seen: dict[str, list[Tensor]] = {n: [] for n in wanted}
    names_, modules = zip(*model.named_children())
    size = 0
    with torch.inference_mode():
        for start in range(0, len(x), CHUNK):
            h = x[start:start + CHUNK]
            # The chain between two recorded layers is fast_chain'ed as split's prefixes are.
            cuts = [0, *[i for i, n in enumerate(names_) if n in wanted]]
            for begin, end in zip(cuts, cuts[1:]):
                h = nn.Sequential(*fast_chain(list(modules[begin:end])))(h)
                seen[names_[end]].append(h)
                size += h.numel() * h.element_size()
                if size > CACHE_BYTES:
                    return {}
    return seen


class SharedInputs:
    """`layer_inputs(model, names, x)` for tasks running at once: computed on first use, once, by the first
    task that needs them, so the tasks of the model's first child (whose input is x itself: None here, it
    needs nothing computed) start at once and the computation overlaps their work (the sensitivity
    analysis on 2 workers: 20 ms less of one worker idle). Pickled (for Ray's workers) computed."""

    def __init__(self, model: nn.Module, names: list[str], x: Tensor) -> None:
        self._args, self._value, self._lock = (model, names, x), None, threading.Lock()
        children = [child for child, _ in model.named_children()]
        self._first = children[0] if isinstance(model, nn.Sequential) and children else None

    def get(self, name: str) -> list[Tensor] | None:
        """The original's input to layer `name` per chunk, or None (the first child's, or not kept)."""
        if name == self._first:
            return None
        with self._lock:
            if self._value is None:
                self._value = layer_inputs(*self._args)
        return self._value.get(name)

    def __getstate__(self) -> dict:
        self.get("")  # computed before it travels
        return {"_value": self._value, "_first": self._first}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _args=None, _lock=threading.Lock())


def outcomes(model: nn.Module, name: str, weights: list[Tensor], x: Tensor, labels: Tensor, reference: Tensor,
             inputs: list[Tensor] | None = None) -> list[dict]:
    """Per weight: accuracy, agreement with `reference` predictions and activation SQNR of layer `name`.

    inputs: the layer's input per chunk (`layer_inputs`), computed here when None."""
    parts = split(model, name)
    if parts is None:  # not a top-level layer of an nn.Sequential: whole models, a hook for the output
        return [_outcome_whole(model, name, w, x, labels, reference) for w in weights]
    prefix, module, suffix = parts
    # The weights are set on a private copy of the layer: the model is shared with other threads
    # (torch.func.functional_call would swap the shared module's weight while it runs).
    layer = copy.deepcopy(module)
    predictions: list[list[Tensor]] = [[] for _ in weights]
    clean, noisy = None, [None] * len(weights)
    onednn = onednn_parts(module, list(suffix))  # a convolution's chain on oneDNN tensors, where it agrees
    if onednn is not None:
        onednn_threads()
    with torch.inference_mode():
        for index, start in enumerate(range(0, len(x), CHUNK)):
            h = inputs[index] if inputs else prefix(x[start:start + CHUNK])  # shared by every setting
            fast = onednn is not None and onednn_agrees(module, onednn, suffix, h)
            h_in = h.to_mkldnn() if fast else h
            for k, w in enumerate(weights):
                layer.weight.copy_(w)
                out = layer(h_in)
                if start == 0:
                    noisy[k] = (out.to_dense() if fast else out)[:ACTIVATION_IMAGES]
                predictions[k].append((onednn[1](onednn[0](out).to_dense()) if fast else suffix(out)).argmax(1))
            if start == 0:
                clean = module(h)[:ACTIVATION_IMAGES]
    power = power_of(clean)  # once for every setting
    return [_scores(torch.cat(p), labels, reference, sqnr_db(clean, n, power)) for p, n in zip(predictions, noisy)]


def gradient_maps(model: nn.Module, name: str, weights: list[Tensor], probes: Tensor, target: Tensor,
                  method: str) -> Tensor | None:
    """`attribute(model with weight w in layer name, probes, target, method)` for each w, concatenated
    (K * P, H, W); None when `split` does not handle the layer or the method is not a GRADIENT_METHODS one.

    The layers before run once with their graph kept; the model and the probes are only read. Every step
    back is autograd's, as in Captum's call, but the last one when the model starts with a `flippable`
    convolution: its input gradient is `input_gradient`'s (within FLIP_TOLERANCE of Captum's maps).
    """
    parts = split(model, name, fast=False)  # exact gradients: torch's own pooling
    if parts is None or method not in GRADIENT_METHODS:
        return None
    prefix, module, suffix = parts
    layer = copy.deepcopy(module)
    x = probes.detach()
    entry = prefix[0] if len(prefix) else layer  # where the gradient leaves for the image
    flip = flippable(entry)
    rows = torch.as_tensor(target).long().reshape(-1, 1).expand(len(x), 1)
    maps = []
    with torch.enable_grad():
        top = x.clone()
        if flip and len(prefix):  # the graph of the layers before starts at the entry's output
            with torch.no_grad():
                top, prefix = entry(x), prefix[1:]
        top.requires_grad_()
        h = prefix(top)
        for w in weights:
            with torch.no_grad():
                layer.weight.copy_(w)
            if flip and entry is layer:  # the gradient stops at the layer's output
                with torch.no_grad():
                    start = layer(x)
                scores = suffix(start.requires_grad_())
            else:
                start = h if h is top else h.detach().requires_grad_()  # the suffix's graph ends at h
                scores = suffix(layer(start))
            # As Captum's Saliency: the gradient of each image's own score, back to the layer's input ...
            # (Captum passes torch.unbind(scores), one root per image: ones as the gradient of their sum, the
            # same numbers without 64 graph roots)
            scores = scores.gather(1, rows).squeeze(1)
            (grad,) = torch.autograd.grad(scores, start, torch.ones_like(scores))
            if h is not top:  # ... then through the shared graph of the layers before
                (grad,) = torch.autograd.grad(h, top, grad, retain_graph=True)
            maps.append(_reduce(input_gradient(entry, grad) if flip else grad, x, method))
    return torch.cat(maps)


# How far the maps may be from Captum's when `input_gradient` takes the last step: a different order of the
# same float32 sums (measured on LeNet-5: at most 4e-7 of a map's largest value; the table's mean rank
# correlations moved by at most 2e-7, its SSIM by 6e-8, its top-k not at all: far below the 2 decimals the
# page shows: the default model's table is unchanged at 2 and at 3 decimals), for 3x less time on that step.
FLIP_TOLERANCE = 1e-5


def flippable(module: nn.Module) -> bool:
    """A Conv2d whose input gradient `input_gradient` computes: stride 1, no dilation, one group, zero padding
    of at most kernel - 1."""
    return (type(module) is nn.Conv2d and module.stride == (1, 1) and module.dilation == (1, 1)
            and module.groups == 1 and module.padding_mode == "zeros" and isinstance(module.padding, tuple)
            and all(p <= k - 1 for p, k in zip(module.padding, module.kernel_size)))


def input_gradient(conv: nn.Conv2d, grad: Tensor) -> Tensor:
    """d(sum(grad * conv(x))) / dx for a `flippable` convolution: the forward convolution of `grad` with the
    weight flipped in space and its channel axes swapped, padding kernel - 1 - padding.

    Instead of autograd's step back through the model's first convolution: torch's (oneDNN's) input gradient
    for one input channel took 5.2 ms on 64 probes of 28 x 28 (conv1 of LeNet-5), this forward convolution
    1.3 ms, and every setting of every layer ends with that step (the sensitivity analysis' 40 settings:
    285 ms of gradients became 186 ms, CPU time)."""
    weight = conv.weight.detach().flip(-1, -2).transpose(0, 1)
    padding = tuple(k - 1 - p for p, k in zip(conv.padding, conv.kernel_size))
    return F.conv2d(grad, weight, padding=padding)


def _reduce(grad: Tensor, x: Tensor, method: str) -> Tensor:
    """The map from the gradient, as core.explain.attribution reduces it (channels max of |g| or sum of g x (x - black))."""
    if method == "saliency":
        return grad.abs().amax(dim=1).to(torch.float32)
    return (grad * (x - black(x).expand_as(x))).sum(dim=1).to(torch.float32)


def sqnr_db(signal: Tensor, approximation: Tensor, power: float | None = None) -> float:
    """10 log10(||signal||^2 / ||signal - approximation||^2) in dB; inf when they are equal (and for 0 vs 0).

    power: `power_of(signal)` when already known (one signal against several approximations)."""
    s, a = signal.detach(), approximation.detach()
    error = power_of(s - a)
    power = power_of(s) if power is None else power
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(power / error) if power > 0 else -math.inf


def power_of(signal: Tensor) -> float:
    """||signal||^2, the sum of squares accumulated in float64."""
    return float(torch.linalg.vector_norm(signal.detach(), dtype=torch.float64)) ** 2


def fast_chain(modules: list[nn.Module]) -> list[nn.Module]:
    """The modules for inference, the same numbers: 2x2 max poolings as MaxPool2x2, and a ReLU followed by
    such a pooling moved after it (max and ReLU commute exactly: relu(max(a, b)) = max(relu(a), relu(b)),
    and the ReLU then sees a quarter of the values)."""
    chain = [_fast(m) for m in modules]
    for i in range(len(chain) - 1):
        if type(chain[i]) is nn.ReLU and not chain[i].inplace and isinstance(chain[i + 1], MaxPool2x2):
            chain[i], chain[i + 1] = chain[i + 1], chain[i]
    return chain


def _fast(module: nn.Module) -> nn.Module:
    """`module`, or MaxPool2x2 for a plain nn.MaxPool2d(2) (stride 2, no padding, dilation 1, floor mode)."""
    return MaxPool2x2() if swappable(module) else module


def _outcome_whole(model: nn.Module, name: str, weight: Tensor, x: Tensor, labels: Tensor, ref: Tensor) -> dict:
    outputs: dict[str, Tensor] = {}
    twin, clean = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        dict(prunable_layers(twin))[name].weight.copy_(weight)

    def keep(key: str):
        # Returns None: a forward hook that returns a tensor REPLACES the layer's output.
        return lambda _m, _i, out: (outputs.setdefault(key, out), None)[1]

    for key, m in (("noisy", twin), ("clean", clean)):
        dict(prunable_layers(m))[name].register_forward_hook(keep(key))
    with torch.inference_mode():
        clean(x[:ACTIVATION_IMAGES])
        predictions = torch.cat([twin(x[i:i + CHUNK]).argmax(1) for i in range(0, len(x), CHUNK)])
    return _scores(predictions, labels, ref, sqnr_db(outputs["clean"], outputs["noisy"][:ACTIVATION_IMAGES]))


def _scores(predictions: Tensor, labels: Tensor, reference: Tensor, activation_sqnr: float) -> dict:
    return {"accuracy": float((predictions == labels).double().mean()),
            "agreement": float((predictions == reference).double().mean()),
            "activation_sqnr_db": activation_sqnr}
