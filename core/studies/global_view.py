"""Global views of a model: what the whole network has learned, not one image's map (issue 10 §2).

- `penultimate`: the activations that enter the last Linear layer (the classifier's features), and
  `embedding`: their 2-D picture, PCA (scikit-learn) fitted on the ORIGINAL model's activations and
  applied to both models, so both panels share one coordinate system; t-SNE (scikit-learn) has no
  transform for new points, so it embeds both models' activations together in one map.
- `first_filters`: the first convolution layer's filters, (out, H, W) with the input channels summed.
- `class_average_maps`: the mean saliency map of each class (the class's own label explained).
- `unit_activity`: per hidden layer, the share of units (neurons, conv channels) that never fire, i.e.
  whose output is never above 0 (what its ReLU passes on) on any test image and position.
- `selected_indices`: the test images a click (or a box or lasso) on the embedding picked, read from the
  points Plotly sends back (each point carries its test image's index as its first customdata).

Hooks only ever go on a private copy of the model (shared models are never touched); inputs are
never modified. Every function is batched.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from core.explain.attribution import _private_copy, attribute
from core.layers import is_conv, layer_labels, prunable_layers

EMBEDDINGS = ("pca", "tsne")
CHUNK = 512               # images per forward pass
MAPS_PER_CLASS = 50       # test images per class averaged into a class map (evenly spaced)
MAP_CHUNK = 100           # images per attribution call of the class maps (progress after each)

Progress = Callable[[float, str], None]


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
                       per_class: int = MAPS_PER_CLASS, progress: Progress | None = None) -> tuple[Tensor, np.ndarray]:
    """The mean `method` map of each class's test images, explaining their own label: (classes, H, W), counts.

    Up to `per_class` images per class, evenly spaced over that class's test images. A class without
    test images gets an all-zero map and count 0 (the caller says so). progress(fraction, words) after
    every MAP_CHUNK maps.
    """
    picked = []
    for c in range(classes):
        rows = torch.nonzero(y == c).flatten()
        picked.append(rows[torch.linspace(0, len(rows) - 1, min(per_class, len(rows))).long()] if len(rows) else rows)
    counts = np.array([len(p) for p in picked])
    maps = torch.zeros((classes, *x.shape[2:]))
    chosen = torch.cat(picked)
    report = progress or (lambda fraction, message: None)
    if len(chosen):
        parts = []
        for start in range(0, len(chosen), MAP_CHUNK):  # chunks only to report progress: the same maps
            rows = chosen[start:start + MAP_CHUNK]
            parts.append(attribute(model, x[rows], y[rows].long(), method))
            done = start + len(rows)
            report(done / len(chosen), f"{done:,} of {len(chosen):,} maps")
        all_maps = torch.cat(parts)
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


def selected_indices(points: Sequence[Mapping], n_test: int) -> list[int]:
    """The test-image indices of the selected embedding points, each once, in the order selected.

    A point's first customdata is its test image's index (core.figures.global_view.embedding_figure).
    Plotly.js keeps numeric customdata as typed arrays, which reach Python as {"0": index, "1": ...}, not a
    list: both are read. A point picked in both panels, or under its "prediction changed" ring, counts
    once; points without a valid index (0 <= index < n_test) are skipped.
    """
    found: dict[int, None] = {}
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, Mapping):
            custom = [custom[k] for k in sorted(custom, key=int)]
        if not isinstance(custom, (list, tuple)) or not custom:
            continue
        try:
            index = int(float(custom[0]))
        except (TypeError, ValueError):
            continue
        if 0 <= index < n_test:
            found.setdefault(index)
    return list(found)
