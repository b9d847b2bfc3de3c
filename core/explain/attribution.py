"""Saliency maps through Captum (agreement of two maps: `core.explain.agreement`, re-exported here).

`attribute` never changes the model it is given (shared between sessions and threads:
no hooks, no mode or requires_grad flips, no .grad) nor the inputs (it works on a clone).

Baselines. The inputs are normalized, so a black pixel is not 0 but -mean/std (-0.425 on
MNIST). Every method that compares with "no pixel" uses black in PIXEL space (`black`):
Gradient × Input multiplies the gradient by (input - black), Integrated Gradients
integrates from the black image, Occlusion paints its square black, and deletion
(core.explain.faithfulness) blacks pixels out. A pixel that is already black therefore gets 0.
"""
from __future__ import annotations

import copy
import threading

import torch
from captum.attr import (
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from core.explain.agreement import saliency_agreement  # noqa: F401  (re-exported: callers import it from here)
from core.layers import is_conv, layer_labels, prunable_layers

METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "grad_cam", "occlusion")

METHOD_LABELS: dict[str, str] = {
    "saliency": "Gradient (saliency)",
    "input_x_gradient": "Gradient × Input",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "grad_cam": "Grad-CAM",
    "occlusion": "Occlusion",
}

_DESCRIPTIONS = {
    "saliency": "How strongly the class score reacts to a tiny change of each pixel (absolute gradient).",
    "input_x_gradient": ("The gradient times how much brighter each pixel is than black (input − black image): "
                         "red pixels push toward the class, blue ones against it, black background is 0."),
    "integrated_gradients": "Each pixel's share of the class score, summed along a path from a black image to this one.",
    "smoothgrad": "The gradient map averaged over noisy copies of the image, which removes speckle.",
    "grad_cam": ("Which regions the last convolution layer relies on for this class: its feature maps after "
                 "their ReLU, weighted by their mean gradient, negative sums cut to 0, upsampled to the image."),
    "occlusion": "How much the class score drops when a small square around each pixel is painted black.",
}

# fork_rng saves and restores the process-wide RNG, so two smoothgrad calls in different
# threads must not interleave (each would restore the other's state mid-draw).
_RNG_LOCK = threading.Lock()


def describe_method(method: str) -> str:
    """One plain-English sentence saying what a method's map shows (for captions)."""
    _check_method(method)
    return _DESCRIPTIONS[method]


def is_signed(method: str) -> bool:
    """True when the method's maps carry a sign (for and against the class); False for |gradient|-like maps."""
    _check_method(method)
    return method in ("input_x_gradient", "integrated_gradients", "occlusion")


def methods_for(model: nn.Module) -> list[str]:
    """The methods that make sense for `model`: Grad-CAM only when it has a Conv2d layer."""
    has_conv = any(is_conv(m) for m in model.modules())
    return [m for m in METHODS if m != "grad_cam" or has_conv]


def attribute(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, method: str, **options
) -> Tensor:
    """Attribution maps of `model` for `inputs` with one of `METHODS`.

    inputs: (N, C, H, W), copied (never modified). target: class index, (N,) tensor of
    indices, or None for the model's own predicted class. options: method settings
    (n_steps, internal_batch_size, nt_samples, noise_level, seed, window, stride,
    perturbations_per_eval; baseline for input_x_gradient, integrated_gradients and
    occlusion: broadcastable to inputs, default `black`). Returns (N, H, W) float32: channels are summed (signed
    methods) or max-reduced (saliency and smoothgrad, which are absolute values).
    """
    _check_method(method)
    if inputs.dim() != 4:
        raise ValueError(f"inputs must be shaped (N, C, H, W), got {tuple(inputs.shape)}")
    x = inputs.detach().clone()
    target = _resolve_target(model, x, target)
    # Captum would set requires_grad on the inputs itself (and warn): do it on our clone.
    x.requires_grad_()
    # enable_grad: callers may sit inside torch.no_grad() (grad mode is per thread).
    with torch.enable_grad():
        maps = _RUNNERS[method](model, x, target, **options)
    return maps.detach().to(torch.float32)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of: {', '.join(METHODS)}")


def _resolve_target(model: nn.Module, x: Tensor, target: Tensor | int | None) -> Tensor | int:
    if target is None:
        with torch.no_grad():
            return model(x).argmax(dim=1)
    if isinstance(target, Tensor):
        if target.numel() == 1:
            return int(target.item())
        if target.shape != (len(x),):
            raise ValueError(f"target must be an int or shaped ({len(x)},), got {tuple(target.shape)}")
        # clone: a target made under torch.inference_mode() cannot be saved for backward.
        return target.detach().long().clone()
    return int(target)


def black(x: Tensor) -> Tensor:
    """Black in pixel space for normalized images x (N, C, H, W): each image's minimum per channel, (N, C, 1, 1).

    Normalized black is -mean/std (-0.425 on MNIST), not 0. The data carry no normalization
    constants, so black is read off the image: every MNIST, mnist5k and scikit-learn digits
    test image has black pixels (tests/test_attribution.py checks it), and so do drawn digits.
    """
    return x.detach().amin(dim=(2, 3), keepdim=True)


def _baseline(x: Tensor, baseline: Tensor | None) -> Tensor:
    base = black(x) if baseline is None else baseline.detach().to(x.dtype)
    return base.expand_as(x).clone()


def _saliency(model: nn.Module, x: Tensor, target) -> Tensor:
    return Saliency(model).attribute(x, target=target, abs=True).amax(dim=1)


def _input_x_gradient(model: nn.Module, x: Tensor, target, baseline: Tensor | None = None) -> Tensor:
    # Captum's InputXGradient multiplies by the normalized input, which puts 31 % of the map's
    # mass on the black background (-0.425 x gradient): multiply by the distance from black.
    gradient = Saliency(model).attribute(x, target=target, abs=False)
    return (gradient * (x.detach() - _baseline(x, baseline))).sum(dim=1)


def _integrated_gradients(
    model: nn.Module, x: Tensor, target, n_steps: int = 32, internal_batch_size: int | None = None,
    baseline: Tensor | None = None,
) -> Tensor:
    # Batches of at least 512 rows keep memory bounded for 64 probes x 32 steps while
    # a slider move (4 images) still runs as one forward/backward.
    batch = internal_batch_size or max(len(x), 512)
    ig = IntegratedGradients(model)
    attr = ig.attribute(x, baselines=_baseline(x, baseline), target=target, n_steps=n_steps, internal_batch_size=batch)
    return attr.sum(dim=1)


def _smoothgrad(
    model: nn.Module, x: Tensor, target, nt_samples: int = 10, noise_level: float = 0.15, seed: int = 0
) -> Tensor:
    # Captum's NoiseTunnel draws from the global RNG and takes no generator: seed a
    # forked RNG so the map is reproducible and the caller's RNG state is untouched.
    stdev = noise_level * float(x.detach().max() - x.detach().min())
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attr = NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=nt_samples, stdevs=stdev, target=target, abs=True
        )
    return attr.amax(dim=1)


def grad_cam_layer(model: nn.Module) -> tuple[str, bool]:
    """The module Grad-CAM explains: (name, after_relu).

    Selvaraju et al. weight the rectified feature maps of the last convolution layer: when
    the last Conv2d is directly followed by an nn.ReLU module, that ReLU's output is used
    (after_relu True), else the convolution's own output. Raises ValueError without Conv2d.
    """
    modules = list(model.named_modules())
    convs = [i for i, (_, m) in enumerate(modules) if is_conv(m)]
    if not convs:
        raise ValueError(
            "Grad-CAM needs a convolutional model (it explains the last Conv2d layer); "
            "this model has none. Use methods_for(model) to list the methods that apply."
        )
    last = convs[-1]
    after = modules[last + 1] if last + 1 < len(modules) else None
    if after is not None and isinstance(after[1], nn.ReLU) and not after[1].inplace:
        return after[0], True
    return modules[last][0], False


def describe_grad_cam(model: nn.Module) -> str:
    """Which layer Grad-CAM explains in `model`, in words for a caption (model only read)."""
    name, after_relu = grad_cam_layer(model)
    conv = [n for n, m in prunable_layers(model) if is_conv(m)][-1]  # a factored conv by its own name
    where = "after its ReLU" if after_relu else "its raw output (no ReLU module follows it)"
    return (f"Grad-CAM explains the last convolution layer, {layer_labels(model)[conv]}, {where}: each of its "
            "feature maps is weighted by its average gradient for the class, the weighted sum is cut at 0 "
            "(only evidence for the class is kept) and stretched to the image's size.")


def _grad_cam(model: nn.Module, x: Tensor, target) -> Tensor:
    layer, _ = grad_cam_layer(model)
    # LayerGradCam registers a forward hook on the layer while attribute() runs. On the
    # shared model, a forward by another thread in that window would fire our hook (and
    # could crash or corrupt our saved activations), so we hook a private copy instead.
    private = _private_copy(model)
    cam = LayerGradCam(private, private.get_submodule(layer))
    # relu_attributions: the ReLU of the weighted sum, as in the paper (only evidence FOR the class).
    attr = cam.attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")[:, 0]


def _private_copy(model: nn.Module) -> nn.Module:
    """deepcopy of `model` that also works on models with live pruning masks.

    deepcopy refuses non-leaf tensors, and torch.nn.utils.prune leaves `weight` as one
    (weight_orig * weight_mask, recomputed by a pre-hook at every forward): copy it detached.
    """
    memo = {
        id(v): v.detach().clone()
        for m in model.modules()
        for v in vars(m).values()
        if isinstance(v, Tensor) and not v.is_leaf
    }
    return copy.deepcopy(model, memo)


def _occlusion(
    model: nn.Module, x: Tensor, target, window: int | None = None, stride: int | None = None,
    perturbations_per_eval: int = 64, baseline: Tensor | None = None,
) -> Tensor:
    channels, height, width = x.shape[1:]
    # The window scales with the image (4 px on 28x28, 2 px on 8x8) so the map has
    # about the same resolution whatever the data set.
    win = window or max(2, min(height, width) // 7)
    step = stride or max(1, win // 2)
    attr = Occlusion(model).attribute(
        x,
        sliding_window_shapes=(channels, win, win),
        strides=(channels, step, step),
        target=target,
        baselines=_baseline(x, baseline),
        perturbations_per_eval=perturbations_per_eval,
    )
    return attr.sum(dim=1)


_RUNNERS = {
    "saliency": _saliency,
    "input_x_gradient": _input_x_gradient,
    "integrated_gradients": _integrated_gradients,
    "smoothgrad": _smoothgrad,
    "grad_cam": _grad_cam,
    "occlusion": _occlusion,
}
