"""Where a map puts its weight: on the digit's stroke (the ink) or on the background.

A cheap measure of where explanations moved under compression: the share of a map's absolute
attribution mass that lies on ink pixels, original vs compressed. Ink is a pixel brighter than
INK_THRESHOLD of the way from the image's black to its white (inputs are normalized, so black is
read off the image as `core.explain.attribution.black` does). A map spread evenly over the image
puts the ink's share of the pixels there: that is the chance level to compare with.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# The agreement module's own rank correlation, alone: saliency_agreement also computes top-k overlap and
# SSIM, which the summary does not show, and doubles the cost on the slider's path (30 vs 14 ms, 64 maps).
from core.explain.agreement import spearman_on_support

INK_THRESHOLD = 0.3  # of the black-to-white range: MNIST strokes' anti-aliased rims stay ink, faint noise does not


def ink_mask(x: Tensor, threshold: float = INK_THRESHOLD) -> Tensor:
    """(N, H, W) bool: pixels of images x (N, C, H, W) brighter than `threshold` of their black-to-white range.

    The brightest channel counts (colour images); an image with one value everywhere has no ink. x is only read.
    """
    if x.dim() != 4:
        raise ValueError(f"images must be shaped (N, C, H, W), got {tuple(x.shape)}")
    bright = x.detach().to(torch.float64).amax(dim=1)
    low = bright.amin(dim=(1, 2), keepdim=True)
    high = bright.amax(dim=(1, 2), keepdim=True)
    return (bright - low) > threshold * (high - low).clamp_min(1e-12)


def stroke_share(maps: Tensor, x: Tensor, threshold: float = INK_THRESHOLD) -> tuple[Tensor, Tensor]:
    """(share, empty), both (N,): the share (0..1) of each map's |attribution| on ink pixels of x.

    maps (N, H, W) and x (N, C, H, W) are only read. A map that is zero everywhere has no mass to
    share: its share is defined as 0.0 and `empty` is True there (never NaN).
    """
    if maps.dim() != 3 or maps.shape[0] != x.shape[0] or maps.shape[1:] != x.shape[2:]:
        raise ValueError(f"maps (N, H, W) must match images (N, C, H, W): {tuple(maps.shape)} vs {tuple(x.shape)}")
    mass = maps.detach().to(torch.float64).abs()
    total = mass.sum(dim=(1, 2))
    on_ink = (mass * ink_mask(x, threshold)).sum(dim=(1, 2))
    empty = total == 0
    return torch.where(empty, torch.zeros_like(total), on_ink / total.clamp_min(1e-300)), empty


@dataclass(frozen=True)
class ExplanationShift:
    """How far the compressed model's maps moved from the original's, on `probes` test images.

    rank_correlation: mean Spearman correlation of |maps| (core.explain.agreement, 1 = same ranking).
    stroke_*: mean share of |attribution| on ink (images with an all-zero map left out; 0.0 when
    every map is empty); stroke_chance: mean share of ink pixels (an even map's share).
    empty_*: how many maps were zero everywhere.
    """

    method: str
    probes: int
    rank_correlation: float
    stroke_original: float
    stroke_compressed: float
    stroke_chance: float
    empty_original: int
    empty_compressed: int


def explanation_shift(original_maps: Tensor, compressed_maps: Tensor, x: Tensor, method: str) -> ExplanationShift:
    """Agreement and stroke share of two models' maps (N, H, W) of the same images x (N, C, H, W); inputs only read."""
    if len(x) == 0:
        raise ValueError("need at least one image")
    if original_maps.shape != compressed_maps.shape:
        raise ValueError(f"maps differ in shape: {tuple(original_maps.shape)} vs {tuple(compressed_maps.shape)}")
    a, b = (m.detach().to(torch.float64).flatten(1).abs() for m in (original_maps, compressed_maps))
    rank, _ = spearman_on_support(a, b, (a != 0) | (b != 0))  # as saliency_agreement's "spearman_abs"
    (share_o, empty_o), (share_c, empty_c) = (stroke_share(m, x) for m in (original_maps, compressed_maps))
    chance = ink_mask(x).to(torch.float64).mean(dim=(1, 2))
    return ExplanationShift(method, len(x), float(rank.mean()), _mean_of_full(share_o, empty_o),
                            _mean_of_full(share_c, empty_c), float(chance.mean()), int(empty_o.sum()),
                            int(empty_c.sum()))


def _mean_of_full(share: Tensor, empty: Tensor) -> float:
    kept = share[~empty]
    return float(kept.mean()) if len(kept) else 0.0
