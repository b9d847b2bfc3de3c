"""How much two saliency maps agree (Adebayo et al. 2018), without being fooled by ties.

Maps of Integrated Gradients, Gradient × Input, Occlusion and Grad-CAM are exactly zero
on large areas (the black background; 49-81 % of MNIST pixels). A Spearman correlation
over every pixel counts all those shared zeros as perfect agreement, so it stays near 1
even when the model is destroyed. Here rank correlations use only the pixels where
EITHER map is nonzero, and the top-k overlap is the expected overlap under random
tie-breaking, so no score depends on the raster order of tied pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def saliency_agreement(a: Tensor, b: Tensor, k: int | None = None) -> dict[str, Tensor]:
    """How much two saliency maps agree, per image.

    a, b: (H, W) or (N, H, W), not modified. Returns float32 tensors of shape (N,) (0-dim
    for 2-D inputs):
    - "spearman_abs", "spearman": rank correlation (average ranks) of |a| vs |b| and of
      a vs b, on the pixels where a or b is nonzero (pixels zero in both are left out);
    - "topk": expected |topk(|a|) ∩ topk(|b|)| / k when ties at the k-th value are broken
      uniformly at random (k defaults to 10 % of the pixels); the same for any pixel order;
    - "ssim": SSIM of |a| and |b|, each scaled to [0, 1] by its max;
    - bool "degenerate": True where the rank correlation is undefined: |a| or |b| is
      constant on those pixels (or both maps are all zero). It is then defined as 1.0 if
      a and b are equal there (both all zero included), else 0.0; never NaN.
    """
    if a.shape != b.shape or a.dim() not in (2, 3):
        raise ValueError(f"a and b must share a shape (H, W) or (N, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
    single = a.dim() == 2
    result = agreement_with_reference(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]), k)
    return {key: v[0] if single else v for key, v in result.items()}


@dataclass(frozen=True)
class Reference:
    """The reference maps' share of `agreement_with_reference`, computed once by `reference_of` (the sensitivity
    analysis compares every setting of every layer with the same original maps)."""

    maps: Tensor        # (P, H, W) float64
    k: int              # the top-k's k
    nonzero: Tensor     # (P, H * W) bool
    full: Tensor        # (P,) bool: no zero pixel, so every comparison's support is every pixel
    ranks_abs: Tensor   # centered average ranks of |map| over all pixels (used where full)
    ranks: Tensor       # the same of the signed map
    inclusion: Tensor   # P(pixel among the top k of |map|)
    unit: Tensor        # |map| / max |map| (SSIM's input)
    mu: Tensor          # SSIM's local means and variances of `unit`
    var: Tensor


def reference_of(reference: Tensor, k: int | None = None) -> Reference:
    """`reference` (P, H, W) prepared for `agreement_with_reference`; k: the top-k's (default 10 % of the pixels)."""
    if reference.dim() != 3 or len(reference) == 0:
        raise ValueError(f"a reference (P, H, W) needed, got {tuple(reference.shape)}")
    if not torch.isfinite(reference).all():
        raise ValueError("saliency maps must be finite (no NaN or inf)")
    b3 = reference.detach().to(torch.float64)
    flat = b3.flatten(1)
    pixels = flat.shape[1]
    k = max(1, round(0.1 * pixels)) if k is None else k
    if not 1 <= k <= pixels:
        raise ValueError(f"k must be between 1 and the number of pixels ({pixels}), got {k}")
    everywhere = torch.ones_like(flat, dtype=torch.bool)
    unit = _unit_scale(b3)
    mu, var = _local_stats(unit)
    return Reference(b3, k, flat.ne(0), flat.ne(0).all(dim=1), _centered_ranks(flat.abs(), everywhere),
                     _centered_ranks(flat, everywhere), _inclusion(flat.abs(), k), unit, mu, var)


def agreement_with_reference(maps: Tensor, reference: Tensor | Reference, k: int | None = None) -> dict[str, Tensor]:
    """`saliency_agreement(maps, reference.repeat(K, 1, 1))`, the same numbers, for the maps (K * P, H, W) of K
    models on the P images of `reference` (P, H, W), as the sensitivity analysis compares every setting with
    the original: the reference's part of the work is done once (`reference_of`, which may be passed
    instead of the maps, then with k None or its own), not K times.

    Its ranks: on a reference map with no zero pixel the support of every comparison is every pixel, so its
    ranks do not depend on the other map (maps with zeros are ranked per comparison, as before); its top-k
    inclusion, its absolute values and the local means of its SSIM. Each row's numbers come from the same
    operations on the same values as in a pairwise call (every reduction is per row), so they are identical.
    """
    ref = reference if isinstance(reference, Reference) else \
        reference_of(reference, k) if reference.dim() == 3 and len(reference) else None
    if ref is None or maps.dim() != 3 or maps.shape[1:] != ref.maps.shape[1:] or len(maps) % len(ref.maps):
        raise ValueError(f"maps (K * P, H, W) and a reference (P, H, W) needed, got {tuple(maps.shape)} and "
                         f"{tuple((reference.maps if isinstance(reference, Reference) else reference).shape)}")
    if k is not None and k != ref.k:
        raise ValueError(f"the reference was prepared for k = {ref.k}, not {k}")
    if not torch.isfinite(maps).all():
        raise ValueError("saliency maps must be finite (no NaN or inf)")
    times = len(maps) // len(ref.maps)
    a3 = maps.detach().to(torch.float64)
    flat_a, flat_b = a3.flatten(1), ref.maps.flatten(1)
    support = (flat_a != 0) | ref.nonzero.repeat(times, 1)
    full = ref.full.repeat(times)  # comparisons whose support is every pixel
    spearman_abs, degenerate = _spearman_many(flat_a.abs(), flat_b.abs(), ref.ranks_abs, support, full, times)
    # Non-negative maps (saliency, SmoothGrad, Grad-CAM) are their own absolute values: the
    # signed correlation is the same number, and ranking is half of this function's cost.
    non_negative = bool((flat_a >= 0).all() and (flat_b >= 0).all())
    result = {
        "spearman_abs": spearman_abs,
        "spearman": spearman_abs if non_negative else
        _spearman_many(flat_a, flat_b, ref.ranks, support, full, times)[0],
        "topk": (_inclusion(flat_a.abs(), ref.k) * ref.inclusion.repeat(times, 1)).sum(dim=1) / ref.k,
        "ssim": _ssim(_unit_scale(a3), ref, times),
    }
    result = {key: v.to(torch.float32) for key, v in result.items()}
    result["degenerate"] = degenerate
    return result


def _spearman_many(x: Tensor, y: Tensor, y_ranks: Tensor, support: Tensor, full: Tensor,
                   times: int) -> tuple[Tensor, Tensor]:
    """`spearman_on_support(x, y.repeat(times, 1), support)`, y's ranks over all pixels (`y_ranks`) taken
    where its row is `full`."""
    y_all = y.repeat(times, 1)
    ry = y_ranks.repeat(times, 1)
    if not bool(full.all()):
        rows = ~full
        ry[rows] = _centered_ranks(y_all[rows], support[rows])
    return _rho(_centered_ranks(x, support), ry, x, y_all, support)


def spearman_on_support(x: Tensor, y: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise Spearman (Pearson of average ranks) on the `support` pixels only; (rho, degenerate).

    Outside the support the values become NaN, which scipy's rankdata leaves unranked
    (nan_policy="omit"), so each row is ranked among its own support pixels.
    """
    return _rho(_centered_ranks(x, support), _centered_ranks(y, support), x, y, support)


def _centered_ranks(x: Tensor, support: Tensor) -> Tensor:
    """Average ranks of each row of `x` among its `support` pixels minus their mean; 0 off the support."""
    rx = average_ranks(torch.where(support, x, torch.full_like(x, float("nan"))))
    count = support.sum(dim=1, keepdim=True).clamp_min(1)
    return torch.where(support, rx - rx.nan_to_num().sum(dim=1, keepdim=True) / count, torch.zeros_like(rx))


def average_ranks(v: Tensor) -> Tensor:
    """Average ranks (1-based, float64) of each row of v (N, P) among its non-NaN entries, NaN where v is NaN:
    scipy's `rankdata(v, axis=1, nan_policy="omit")`, the same numbers (tests/test_ranks.py).

    Written out because rankdata spends most of its time outside the sort: on 2,560 maps of 784 pixels
    (one sensitivity analysis) it took 130 ms of which its sort 15 ms; this 45 ms. The rows without ties
    (most maps) take their position in the sorted order; only rows with ties average their tied runs.
    """
    order = torch.from_numpy(np.argsort(v.numpy(), axis=1))  # NaN sorts last, as in rankdata
    ordered = torch.gather(v, 1, order)
    n = v.shape[1]
    pos = torch.arange(1, n + 1, dtype=torch.float64).expand(v.shape).clone()
    ties = ordered[:, 1:] == ordered[:, :-1]  # NaN == NaN is False: left-out pixels never tie
    rows = ties.any(dim=1).nonzero().squeeze(1)
    if len(rows):  # each tied run gets the mean of its first and last position
        tied, p, one = ties[rows], pos[rows], torch.ones(len(rows), 1, dtype=torch.bool)
        first = torch.where(torch.cat([one, ~tied], 1), p, 0.0).cummax(dim=1).values
        last = torch.where(torch.cat([~tied, one], 1), p, float(n + 1)).flip(1).cummin(dim=1).values.flip(1)
        pos[rows] = (first + last) / 2
    ranks = torch.empty(v.shape, dtype=torch.float64).scatter_(1, order, pos)
    return torch.where(v.isnan(), float("nan"), ranks)


def _rho(rx: Tensor, ry: Tensor, x: Tensor, y: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
    var_x, var_y = rx.square().sum(dim=1), ry.square().sum(dim=1)
    rho = ((rx * ry).sum(dim=1) / (var_x * var_y).sqrt().clamp_min(1e-300)).clamp(-1.0, 1.0)
    # All ranks equal = the map is constant on the support (or the support is empty).
    degenerate = (var_x == 0) | (var_y == 0)
    equal = ((x == y) | ~support).all(dim=1).to(rho.dtype)
    return torch.where(degenerate, equal, rho), degenerate


def topk_overlap(x: Tensor, y: Tensor, k: int) -> Tensor:
    """Expected share of the k largest entries two rows (N, P) have in common, ties broken at random.

    A pixel above the k-th largest value is in the top k for sure; the e pixels equal to
    it share the remaining k - above places, each with probability (k - above) / e. With
    independent tie-breaking in the two maps the expected overlap is sum_p P_x(p) P_y(p) / k:
    exact, deterministic and independent of the pixel order (Grad-CAM maps are 61 % zeros).
    """
    return (_inclusion(x, k) * _inclusion(y, k)).sum(dim=1) / k


def _inclusion(t: Tensor, k: int) -> Tensor:
    """P(pixel is among the top k) under uniform random tie-breaking, (N, P) float64."""
    # numpy's selection (introselect), not torch.topk: the same value, 0.4 ms instead of 1.8 for 256 maps of 784
    n = t.shape[1]
    kth = torch.from_numpy(np.partition(t.detach().numpy(), n - k, axis=1)[:, n - k:n - k + 1])
    above, tied = t > kth, t == kth
    share = (k - above.sum(dim=1, keepdim=True)) / tied.sum(dim=1, keepdim=True)
    return above.to(torch.float64) + tied * share.to(torch.float64)


def _unit_scale(maps: Tensor) -> Tensor:
    """|map| / max|map| per image (all-zero maps stay zero)."""
    m = maps.abs()
    peak = m.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, m / peak.clamp_min(1e-300), torch.zeros_like(m))


def _ssim(x: Tensor, ref: Reference, times: int = 1) -> Tensor:
    """Mean SSIM (Wang et al. 2004) of (N, H, W) maps in [0, 1], uniform 7x7 window, against the reference's
    unit-scaled maps repeated `times` (their local statistics taken once, in `reference_of`).

    Hand-written because none of our libraries (torch, captum, scipy, scikit-learn)
    ships SSIM. Only windows fully inside the image count ("valid"), as scikit-image
    does after cropping; statistics use population (not sample) variance.
    """
    c1, c2 = 0.01**2, 0.03**2  # (K * data_range)^2 with data_range 1
    mu_x, var_x = _local_stats(x)
    mu_y, var_y = ref.mu.repeat(times, 1, 1), ref.var.repeat(times, 1, 1)
    cov = _window_mean(x * ref.unit.repeat(times, 1, 1)) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(1, 2))


def _local_stats(t: Tensor) -> tuple[Tensor, Tensor]:
    """SSIM's local means and (population) variances of (N, H, W) maps, one value per window."""
    mu = _window_mean(t)
    return mu, _window_mean(t * t) - mu.square()


def _window_mean(t: Tensor) -> Tensor:
    """Means of t (N, H, W) over every 7x7 window inside the image (smaller images: one window as tall or as wide
    as they are), (N, H - 6, W - 6), from running sums (a summed-area table).

    Not avg_pool2d: on float64 maps it took 2.1 ms for 256 maps of 28 x 28 against 0.8 ms here, and SSIM takes
    three of them per comparison; the sums differ from its in the last bits (4e-16 on values up to 1).
    """
    wh, ww = min(7, t.shape[1]), min(7, t.shape[2])
    rows = t.cumsum(dim=1)
    rows = torch.cat([rows[:, wh - 1:wh], rows[:, wh:] - rows[:, :-wh]], dim=1)
    both = rows.cumsum(dim=2)
    both = torch.cat([both[:, :, ww - 1:ww], both[:, :, ww:] - both[:, :, :-ww]], dim=2)
    return both / (wh * ww)
