"""Saliency maps through Captum, and how much two maps agree (Adebayo et al. 2018).

`attribute` never changes the model it is given (shared between sessions and threads:
no hooks, no mode or requires_grad flips, no .grad) nor the inputs (it works on a clone).
"""
from __future__ import annotations

import copy
import threading

import torch
import torch.nn.functional as F
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from scipy.stats import rankdata
from torch import Tensor, nn

from core.layers import is_conv

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
    "input_x_gradient": "The gradient times the pixel value: red pixels push toward the class, blue ones against it.",
    "integrated_gradients": "Each pixel's share of the class score, summed along a path from a black image to this one.",
    "smoothgrad": "The gradient map averaged over noisy copies of the image, which removes speckle.",
    "grad_cam": "Which regions the last convolution layer relies on for this class, upsampled to the image.",
    "occlusion": "How much the class score drops when a small square around each pixel is blacked out.",
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
    perturbations_per_eval). Returns (N, H, W) float32: channels are summed (signed
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


def _black(x: Tensor) -> Tensor:
    """Per-image black baseline: the data are normalized, so black is each image's minimum."""
    return x.detach().amin(dim=(1, 2, 3), keepdim=True).expand_as(x).clone()


def _saliency(model: nn.Module, x: Tensor, target) -> Tensor:
    return Saliency(model).attribute(x, target=target, abs=True).amax(dim=1)


def _input_x_gradient(model: nn.Module, x: Tensor, target) -> Tensor:
    return InputXGradient(model).attribute(x, target=target).sum(dim=1)


def _integrated_gradients(
    model: nn.Module, x: Tensor, target, n_steps: int = 32, internal_batch_size: int | None = None
) -> Tensor:
    # Batches of at least 512 rows keep memory bounded for 64 probes x 32 steps while
    # a slider move (4 images) still runs as one forward/backward.
    batch = internal_batch_size or max(len(x), 512)
    ig = IntegratedGradients(model)
    attr = ig.attribute(x, baselines=_black(x), target=target, n_steps=n_steps, internal_batch_size=batch)
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


def _grad_cam(model: nn.Module, x: Tensor, target) -> Tensor:
    convs = [name for name, m in model.named_modules() if is_conv(m)]
    if not convs:
        raise ValueError(
            "Grad-CAM needs a convolutional model (it explains the last Conv2d layer); "
            "this model has none. Use methods_for(model) to list the methods that apply."
        )
    # LayerGradCam registers a forward hook on the layer while attribute() runs. On the
    # shared model, a forward by another thread in that window would fire our hook (and
    # could crash or corrupt our saved activations), so we hook a private copy instead.
    private = _private_copy(model)
    cam = LayerGradCam(private, private.get_submodule(convs[-1]))
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
    perturbations_per_eval: int = 64,
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
        baselines=_black(x),
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


def saliency_agreement(a: Tensor, b: Tensor, k: int | None = None) -> dict[str, Tensor]:
    """How much two saliency maps agree, per image (Adebayo et al. 2018).

    a, b: (H, W) or (N, H, W), not modified. Returns float32 tensors of shape (N,) (0-dim
    for 2-D inputs): "spearman_abs", "spearman" (rank correlation of |a| vs |b|, and of
    a vs b), "topk" (|topk(|a|) ∩ topk(|b|)| / k, k defaults to 10 % of the pixels, ties
    go to the lower pixel index), "ssim" (of |a| and |b|, each scaled to [0, 1] by its
    max), and bool "degenerate": True where |a| or |b| is constant, so a rank correlation
    is undefined. Then it is defined as 1.0 if both maps are constant and equal, else 0.0.
    """
    if a.shape != b.shape or a.dim() not in (2, 3):
        raise ValueError(f"a and b must share a shape (H, W) or (N, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("saliency maps must be finite (no NaN or inf)")
    single = a.dim() == 2
    a3 = a.detach().reshape(-1, *a.shape[-2:]).to(torch.float64)
    b3 = b.detach().reshape(-1, *b.shape[-2:]).to(torch.float64)
    flat_a, flat_b = a3.flatten(1), b3.flatten(1)
    pixels = flat_a.shape[1]
    k = max(1, round(0.1 * pixels)) if k is None else k
    if not 1 <= k <= pixels:
        raise ValueError(f"k must be between 1 and the number of pixels ({pixels}), got {k}")
    spearman_abs = _spearman(flat_a.abs(), flat_b.abs())
    # Non-negative maps (saliency, SmoothGrad, Grad-CAM) are their own absolute values: the
    # signed correlation is the same number, and ranking is half of this function's cost.
    non_negative = bool((flat_a >= 0).all() and (flat_b >= 0).all())
    result = {
        "spearman_abs": spearman_abs,
        "spearman": spearman_abs if non_negative else _spearman(flat_a, flat_b),
        "topk": _topk_overlap(flat_a.abs(), flat_b.abs(), k),
        "ssim": _ssim(_unit_scale(a3), _unit_scale(b3)),
    }
    result = {key: v.to(torch.float32) for key, v in result.items()}
    result["degenerate"] = _is_constant(flat_a.abs()) | _is_constant(flat_b.abs())
    return {key: v[0] if single else v for key, v in result.items()}


def _is_constant(x: Tensor) -> Tensor:
    return x.amax(dim=1) == x.amin(dim=1)


def _spearman(x: Tensor, y: Tensor) -> Tensor:
    """Row-wise Spearman: Pearson correlation of average ranks (as scipy.stats.spearmanr)."""
    rx = torch.from_numpy(rankdata(x.numpy(), axis=1))
    ry = torch.from_numpy(rankdata(y.numpy(), axis=1))
    rx, ry = rx - rx.mean(dim=1, keepdim=True), ry - ry.mean(dim=1, keepdim=True)
    denom = (rx.square().sum(dim=1) * ry.square().sum(dim=1)).sqrt()
    rho = ((rx * ry).sum(dim=1) / denom.clamp_min(1e-300)).clamp(-1.0, 1.0)
    const_x, const_y = _is_constant(x), _is_constant(y)
    both_equal = (const_x & const_y & (x == y).all(dim=1)).to(rho.dtype)
    return torch.where(const_x | const_y, both_equal, rho)


def _topk_overlap(x: Tensor, y: Tensor, k: int) -> Tensor:
    """Share of the k largest entries that two rows have in common (stable: ties by index)."""
    def top_mask(t: Tensor) -> Tensor:
        idx = torch.sort(t, dim=1, descending=True, stable=True).indices[:, :k]
        return torch.zeros_like(t, dtype=torch.bool).scatter_(1, idx, True)

    return (top_mask(x) & top_mask(y)).sum(dim=1).to(torch.float64) / k


def _unit_scale(maps: Tensor) -> Tensor:
    """|map| / max|map| per image (all-zero maps stay zero)."""
    m = maps.abs()
    peak = m.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, m / peak.clamp_min(1e-300), torch.zeros_like(m))


def _ssim(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM (Wang et al. 2004) of (N, H, W) maps in [0, 1], uniform 7x7 window.

    Hand-written because none of our libraries (torch, captum, scipy, scikit-learn)
    ships SSIM. Only windows fully inside the image count ("valid"), as scikit-image
    does after cropping; statistics use population (not sample) variance.
    """
    c1, c2 = 0.01**2, 0.03**2  # (K * data_range)^2 with data_range 1
    win = (min(7, x.shape[1]), min(7, x.shape[2]))

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t[:, None], win, stride=1)

    mu_x, mu_y = mean(x), mean(y)
    var_x = mean(x * x) - mu_x.square()
    var_y = mean(y * y) - mu_y.square()
    cov = mean(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(1, 2, 3))
