"""Global views of a model: what the whole network has learned, not one image's map (issue 10 §2).

- `penultimate`: the activations that enter the last Linear layer (the classifier's features), and
  `embedding`: their 2-D picture, PCA (scikit-learn) fitted on the ORIGINAL model's activations and
  applied to both models, so both panels share one coordinate system; t-SNE (scikit-learn) has no
  transform for new points, so it embeds both models' activations together in one map.
- `first_filters`: the first convolution layer's filters, (out, H, W) with the input channels summed.
- `class_average_maps`: the mean saliency map of each class (the class's own label explained).
- `unit_activity`: per hidden layer, the share of units (neurons, conv channels) that never fire, i.e.
  whose output is never above 0 (what its ReLU passes on) on any test image and position.

Hooks only ever go on a private copy of the model (shared models are never touched); inputs are
never modified. Every function is batched.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from core.explain.attribution import _private_copy, attribute
from core.layers import is_conv, layer_labels, prunable_layers

EMBEDDINGS = ("pca", "tsne")
CHUNK = 512               # images per forward pass
MAPS_PER_CLASS = 50       # test images per class averaged into a class map (evenly spaced)


def _outputs(model: nn.Module, x: Tensor, names: Sequence[str], inputs: bool = False) -> dict[str, Tensor]:
    """The outputs (or inputs) of the named submodules for every image of x, in chunks, on a private copy."""
    private = _private_copy(model).eval()
    caught: dict[str, list[Tensor]] = {name: [] for name in names}
    handles = []
    for name in names:
        def keep(module, args, out, name=name):
            caught[name].append((args[0] if inputs else out).detach())
        handles.append(private.get_submodule(name).register_forward_hook(keep))
    try:
        with torch.inference_mode():
            for chunk in x.detach().split(CHUNK):
                private(chunk)
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in caught.items()}


def penultimate(model: nn.Module, x: Tensor) -> Tensor:
    """The features entering the model's last Linear layer for every image of x (N, C, H, W): (N, D)."""
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError("the model has no Linear layer, so it has no penultimate layer to show")
    return _outputs(model, x, [last[-1]], inputs=True)[last[-1]].flatten(1)


def embedding(original: Tensor, compressed: Tensor, kind: str = "pca", seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """2-D coordinates of both models' features (N, D) in one coordinate system, and a caption sentence.

    pca: fitted on the original, applied to both (the sentence gives the variance the two axes keep).
    tsne: both sets embedded together (t-SNE cannot place new points in an existing map).
    """
    from sklearn.decomposition import PCA  # here, not at the top: the app's start-up does not need scikit-learn
    from sklearn.manifold import TSNE

    a, b = original.double().numpy(), compressed.double().numpy()
    if kind == "pca":
        if a.shape[1] < 2 or len(a) < 2:
            zeros = np.zeros((len(a), 2))
            return zeros, zeros.copy(), "Too few features or images for a 2-D picture: every point is drawn at 0."
        pca = PCA(n_components=2, random_state=seed).fit(a)
        kept = float(pca.explained_variance_ratio_.sum())
        return pca.transform(a), pca.transform(b), (
            f"PCA fitted on the original's features and applied to both, so both panels share its axes; "
            f"the two axes keep {kept:.0%} of the original's variance.")
    if kind == "tsne":
        joint = np.concatenate([a, b])
        perplexity = float(min(30.0, max(2.0, (len(joint) - 1) / 3)))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(joint)
        return coords[: len(a)], coords[len(a):], (
            "t-SNE of both models' features together (it cannot place new points in a finished map), so both panels "
            "share one map; distances between far-apart groups mean little in t-SNE.")
    raise ValueError(f"unknown embedding {kind!r}; choose one of {', '.join(EMBEDDINGS)}")


def first_filters(model: nn.Module) -> tuple[str, Tensor] | None:
    """(label, filters (out, kH, kW), input channels summed) of the first Conv2d layer; None without one."""
    for name, module in prunable_layers(model):
        if is_conv(module):
            return layer_labels(model)[name], module.weight.detach().sum(1).clone()
    return None


def class_average_maps(model: nn.Module, x: Tensor, y: Tensor, method: str, classes: int,
                       per_class: int = MAPS_PER_CLASS) -> tuple[Tensor, np.ndarray]:
    """The mean `method` map of each class's test images, explaining their own label: (classes, H, W), counts.

    Up to `per_class` images per class, evenly spaced over that class's test images. A class without
    test images gets an all-zero map and count 0 (the caller says so).
    """
    picked = []
    for c in range(classes):
        rows = torch.nonzero(y == c).flatten()
        picked.append(rows[torch.linspace(0, len(rows) - 1, min(per_class, len(rows))).long()] if len(rows) else rows)
    counts = np.array([len(p) for p in picked])
    maps = torch.zeros((classes, *x.shape[2:]))
    chosen = torch.cat(picked)
    if len(chosen):
        all_maps = attribute(model, x[chosen], y[chosen].long(), method)
        for c, part in enumerate(all_maps.split(counts.tolist())):
            if len(part):
                maps[c] = part.mean(0)
    return maps, counts


def unit_activity(model: nn.Module, x: Tensor) -> pd.DataFrame:
    """Per hidden layer (every Linear/Conv2d but the last layer): units, how many never fire on x, their share.

    A unit fires when its output (a conv channel: at any position) is above 0 for some image. A layer
    with no units (none left) gets share 1.0 and is flagged `no_units`. Columns: layer, units, silent,
    silent_share, no_units.
    """
    layers = prunable_layers(model)[:-1]  # the last layer's units are the classes
    labels = layer_labels(model)
    outs = _outputs(model, x, [name for name, _ in layers])
    rows = []
    for name, module in layers:
        out = outs[name]
        fired = (out > 0).transpose(0, 1).reshape(out.shape[1], -1).any(1) if out.numel() else torch.zeros(0, dtype=bool)
        units = int(out.shape[1]) if out.dim() > 1 else 0
        silent = units - int(fired.sum())
        rows.append({"layer": labels[name], "units": units, "silent": silent,
                     "silent_share": silent / units if units else 1.0, "no_units": units == 0})
    return pd.DataFrame(rows, columns=["layer", "units", "silent", "silent_share", "no_units"])
