"""Precomputed stops of one compression control, for figures that scrub in the browser.

A scrubbed figure carries one Plotly frame per stop of a control (pruning rate 0-100 %
in steps of 5, or every bit width), so dragging its slider never asks the server. This
module computes what those frames show, once per setting of the OTHER controls:

- `scrub_series`: per stop, the CompressionReport numbers (accuracy, size, sparsity,
  agreement) and, per prunable layer, a histogram of the compressed weights on bin edges
  shared by every stop (so bars stay put while their heights change) plus the share of
  exact zeros (the "spike at zero").
- `scrub_maps`: per stop, the compressed model's saliency map of one image, for the
  ORIGINAL model's predicted class (as on the Saliency page, so the maps compare), its
  class probabilities, and the map's rank agreement with the original's.

Every stop is `core.compression.compress` of the same original (copies; the original is
never modified); nothing here imports Streamlit. The figure lives in `core.figures.scrub`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from core.explain.attribution import attribute, saliency_agreement
from core.compression import CompressionConfig, compress
from core.compression import controls as compression_controls
from core.compression.steps import Control
from core.figures import hist_edges
from core.layers import prunable_layers
from core.metrics import Evaluation, compression_report, evaluate

# Every compression control with scrub stops (core/compression/steps.py): URL key -> (config field, Control).
# The main sliders first (pruning rate, bit width: the page opens on the first), then other families' controls.
SCRUBBED: dict[str, tuple[str, Control]] = {c.url: (name, c) for name, (_, c) in sorted(
    compression_controls().items(), key=lambda item: not item[1][1].main) if c.stops}
CONTROLS = {key: tuple(c.stops) for key, (_, c) in SCRUBBED.items()}  # e.g. prune: 0-100 % in 5s; bits: 1..8, 32
LABELS = {key: c.label for key, (_, c) in SCRUBBED.items()}
PRUNE_STOPS, BIT_STOPS = CONTROLS["prune"], CONTROLS["bits"]


def stops(control: str) -> tuple[int, ...]:
    """The slider stops of `control`, in shown units ("prune": percent; "bits": bit widths)."""
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; choose one of: {', '.join(CONTROLS)}")
    return CONTROLS[control]


def stop_config(base: CompressionConfig, control: str, stop: int) -> CompressionConfig:
    """`base` with the scrubbed control set to `stop` (a copy; frozen configs are never changed)."""
    if stop not in stops(control):
        raise ValueError(f"{stop} is not a stop of {control!r}: {stops(control)}")
    field, c = SCRUBBED[control]
    return replace(base, **{field: stop / c.scale if c.scale != 1 else stop})


def neutral(base: CompressionConfig, control: str) -> CompressionConfig:
    """`base` with the scrubbed control at its first stop: the cache key shared by every position of it."""
    return stop_config(base, control, stops(control)[0])


def nearest_stop(base: CompressionConfig, control: str) -> int:
    """Index of the stop closest to `base`'s own value of the control (the figure opens there)."""
    stops(control)  # an unknown control raises, naming the known ones
    field, c = SCRUBBED[control]
    value = getattr(base, field) * c.scale
    return int(np.argmin([abs(s - value) for s in stops(control)]))


def stop_label(control: str, stop: int) -> str:
    """How a stop is written on the slider: "45 %", "4-bit", "32-bit (off)"."""
    _, c = SCRUBBED[control]
    return c.stop_labels.get(stop, f"{stop}{c.unit}")


def is_categorical(control: str) -> bool:
    """Whether the stops are choices (evenly spaced on an axis) rather than a number line."""
    return bool(SCRUBBED[control][1].choices)


@dataclass(frozen=True, eq=False)
class LayerHistograms:
    """One layer's weights at every stop, on shared bin edges (S = stops, B = bins).

    edges (B+1,); original (B,) and counts (S, B): % of the layer's weights per bin, exact
    zeros left out; zeros_original (float) and zeros (S,): % of the weights that are exactly 0.
    """

    edges: np.ndarray
    original: np.ndarray
    counts: np.ndarray
    zeros_original: float
    zeros: np.ndarray


@dataclass(frozen=True, eq=False)
class ScrubSeries:
    """The headline numbers at every stop of `control`; arrays have one entry per stop.

    accuracy, sparsity, agreement are fractions 0..1; size_bytes is the compressed storage
    (CompressionReport.size_compressed_bytes); ratio = original size / compressed size.
    """

    control: str
    stops: tuple[int, ...]
    base: CompressionConfig
    accuracy: np.ndarray
    size_bytes: np.ndarray
    ratio: np.ndarray
    sparsity: np.ndarray
    agreement: np.ndarray
    original_accuracy: float
    original_size_bytes: float
    histograms: dict[str, LayerHistograms]


def scrub_series(original: nn.Module, base: CompressionConfig, control: str, x_test: Tensor, y_test: Tensor,
                 original_eval: Evaluation | None = None) -> ScrubSeries:
    """Compress `original` at every stop of `control` (other settings from `base`) and measure each.

    x_test (N, C, H, W), y_test (N,). The original is evaluated once (or pass `original_eval`)
    and only read; each stop works on its own compressed copy, dropped after measuring.
    """
    original_eval = original_eval or evaluate(original, x_test, y_test)
    reports, weights = [], []
    for stop in stops(control):
        cfg = stop_config(base, control, stop)
        compressed = compress(original, cfg)
        reports.append(compression_report(original, compressed, cfg, x_test, y_test, original_eval=original_eval))
        weights.append({name: m.weight.detach().float().numpy().ravel() for name, m in prunable_layers(compressed)})
    before = {name: m.weight.detach().float().numpy().ravel() for name, m in prunable_layers(original)}
    rows = [(r.compressed.accuracy, r.size_compressed_bytes, r.compression_ratio, r.sparsity, r.agreement)
            for r in reports]
    accuracy, size, ratio, sparsity, agreement = (np.array(column, dtype=np.float64) for column in zip(*rows))
    return ScrubSeries(control=control, stops=stops(control), base=neutral(base, control), accuracy=accuracy,
                       size_bytes=size, ratio=ratio, sparsity=sparsity, agreement=agreement,
                       original_accuracy=original_eval.accuracy, original_size_bytes=reports[0].size_original_bytes,
                       histograms={name: layer_histograms(w, [stop[name] for stop in weights])
                                   for name, w in before.items()})


def layer_histograms(original: np.ndarray, compressed: list[np.ndarray]) -> LayerHistograms:
    """Histograms (in % of the layer) of one layer's flat weights before and at every stop; inputs only read.

    Edges come from `core.figures.hist_edges` over the nonzero weights of the original and of
    every stop, so one set of bins serves every frame.
    """
    total = max(original.size, 1)
    nonzero = [w[w != 0] for w in (original, *compressed)]
    edges = hist_edges(*nonzero) if sum(w.size for w in nonzero) else np.array([-1.0, 1.0])
    counts = np.stack([np.histogram(w, bins=edges)[0] * (100.0 / total) for w in nonzero])
    zeros = np.array([100.0 * (1 - w.size / total) for w in nonzero])
    return LayerHistograms(edges=edges, original=counts[0], counts=counts[1:], zeros_original=float(zeros[0]),
                           zeros=zeros[1:])


@dataclass(frozen=True, eq=False)
class ScrubMaps:
    """One image's saliency maps, original and at every stop (S stops, K classes, H×W pixels).

    original (H, W) and maps (S, H, W) float32; probabilities (S, K) and original_probabilities
    (K,) softmax of each model on the image; target = the original's predicted class, which
    every map explains; rank (S,) Spearman correlation of |map| with the original's.
    """

    method: str
    target: int
    original: np.ndarray
    maps: np.ndarray
    original_probabilities: np.ndarray
    probabilities: np.ndarray
    rank: np.ndarray


def scrub_maps(original: nn.Module, base: CompressionConfig, control: str, image: Tensor,
               method: str) -> ScrubMaps:
    """Maps of `image` (C, H, W; copied) by the original and by every stop's compressed copy.

    All maps explain the original model's predicted class. The original is only read.
    """
    x = image.detach().unsqueeze(0).clone()
    with torch.inference_mode():
        before = torch.softmax(original(x), dim=1)[0]
    target = int(before.argmax())
    maps, probabilities = [], []
    for stop in stops(control):
        compressed = compress(original, stop_config(base, control, stop))
        maps.append(attribute(compressed, x, target, method)[0])
        with torch.inference_mode():
            probabilities.append(torch.softmax(compressed(x), dim=1)[0])
    reference = attribute(original, x, target, method)[0]
    stack = torch.stack(maps)
    rank = saliency_agreement(reference.expand_as(stack), stack)["spearman_abs"]
    return ScrubMaps(method=method, target=target, original=reference.numpy(), maps=stack.numpy(),
                     original_probabilities=before.numpy(), probabilities=torch.stack(probabilities).numpy(),
                     rank=rank.numpy().astype(np.float64))
