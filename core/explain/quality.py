"""How good an explanation is, family by family (REFERENCE §11), each beside a random map's value.

For a batch of maps (N, H, W), all batched in torch (the trade-off sweeps measure these per point):

- **Sparseness** (Chalasani et al. 2020, Quantus' `Sparseness`): the Gini index of |a|. We scale
  Quantus' value by P / (P - 1) for P pixels, so that one pixel holding everything scores exactly 1
  (Quantus: 1 - 1/P) and a flat map 0. Higher = a more concentrated, "simpler" map.
- **Complexity** (Bhatt et al. 2020, Quantus' `Complexity`): the entropy (nats) of |a| / Σ|a|;
  0 for one pixel, log P for a flat map. Lower = simpler.
- **Max-sensitivity** (Yeh et al. 2019, Captum's `sensitivity_max`): the largest
  ‖Φ(x) − Φ(x')‖ / ‖Φ(x)‖ over `samples` inputs x' drawn uniformly from the L∞ ball of radius r
  around x (Captum's default perturbation). Lower = a steadier map.
- **Completeness** (Sundararajan et al. 2017), for Integrated Gradients: Σ a against the change of
  the class score (logit) from the baseline (black) to the image; reported as the gap
  |Σ a − Δf| / |Δf| (0 = complete).

Chance. Each measure comes with the value of a RANDOM map on the same images (standard Gaussian per
pixel, a fixed seed, as core.explain.faithfulness uses for infidelity): a random map's sparseness
(about 0.41, the Gini index of |N(0, 1)|, √2 − 1) and complexity (about log P - 0.18) say what "no structure" scores; for
max-sensitivity the random map is drawn afresh for every input x', i.e. an explanation that has
nothing to do with the input (about √2); for completeness it is rescaled to the map's own norm.

Degenerate cases, defined and flagged (never NaN): an all-zero map (`empty`) is scored as the flat
map it is the limit of (sparseness 0, complexity log P, as Quantus' epsilon makes it) and its
max-sensitivity is 0; an image whose class score does not change from the baseline (|Δf| ≤ 1e-6)
has completeness gap 0 and is flagged `no_change`. Means over probes (`summary`) count flagged
probes at these values and say how many there are. Nothing here modifies the model, the inputs or the maps.

Randomisation, the fourth family, is the sanity check (core.explain.sanity, the Sanity check page).
Quantus has no batched torch path (it loops in numpy and re-explains per sample), hence this module;
tests/test_quality.py checks every measure against Quantus and Captum on small inputs.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import torch
from torch import Tensor, nn

from core.explain.attribution import attribute, black
from core.explain.faithfulness import RANDOM_ORDERINGS, deletion_insertion

RADIUS = 0.02          # perturbation radius as a share of the images' value range (max - min)
SAMPLES = 10           # perturbed inputs per image (Captum's default n_perturb_samples)
TINY = 1e-6            # |Δf| at or below this: the class score did not change
EXPLAIN_CHUNK = 512    # images per attribution call in max_sensitivity (bounded memory for IG)

COSTLY = ("integrated_gradients", "smoothgrad", "occlusion")  # one map costs tens of forward passes
COSTLY_IMAGES = 16     # their max-sensitivity is measured on this many probes (the page says so)

Explain = Callable[[Tensor, Tensor], Tensor]  # (inputs (M, C, H, W), target (M,)) -> maps (M, H, W)


def _flat(maps: Tensor) -> Tensor:
    return maps.detach().reshape(len(maps), -1).to(torch.float64)


def empty(maps: Tensor) -> Tensor:
    """True for every map (N, H, W) that is zero everywhere, (N,) bool."""
    return _flat(maps).abs().sum(1) == 0


def random_maps(shape: tuple[int, ...], seed: int = 0) -> Tensor:
    """Standard Gaussian maps of `shape` from a local generator (the global RNG is left alone)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def sparseness(maps: Tensor) -> Tensor:
    """Gini index of |maps| (N, H, W) scaled to [0, 1]: one-hot 1, flat 0; an all-zero map 0 (flagged by `empty`).

    Quantus' formula Σ_k (2k - P - 1) a_(k) / (P Σ a) over the sorted |a|, times P / (P - 1).
    """
    a = torch.sort(_flat(maps).abs(), dim=1).values
    p = a.shape[1]
    if p < 2:
        return torch.zeros(len(a), dtype=torch.float64)
    k = torch.arange(1, p + 1, dtype=torch.float64)
    total = a.sum(1)
    gini = ((2 * k - p - 1) * a).sum(1) / (p * total.clamp_min(torch.finfo(torch.float64).tiny))
    return torch.where(total > 0, gini * p / (p - 1), 0.0)


def complexity(maps: Tensor) -> Tensor:
    """Entropy (nats) of |maps| / Σ|maps| per map (N,): 0 for one pixel, log P flat; an all-zero map log P (flagged)."""
    a = _flat(maps).abs()
    total = a.sum(1, keepdim=True)
    share = torch.where(total > 0, a / total.clamp_min(torch.finfo(torch.float64).tiny), 1.0 / a.shape[1])
    return -torch.special.xlogy(share, share).sum(1)


def uniform_noise(shape: tuple[int, ...], radius: float, seed: int = 0) -> Tensor:
    """Noise drawn uniformly from [-radius, radius] per value (Captum's default_perturb_func), local generator."""
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * radius


def max_sensitivity(explain: Explain, inputs: Tensor, target: Tensor, maps: Tensor | None = None,
                    radius: float | None = None, samples: int = SAMPLES, seed: int = 0,
                    noise: Tensor | None = None) -> dict[str, Tensor]:
    """Max-sensitivity of `explain` at `inputs` (N, C, H, W) for classes `target` (N,), per image.

    maps: explain(inputs, target) when already computed. radius: of the L∞ ball, in input units
    (default RADIUS × the inputs' value range). noise: (samples, N, C, H, W) to use instead of
    drawing it (tests). All samples x N perturbed inputs are explained in batches of EXPLAIN_CHUNK.
    Returns "sensitivity" (N,), "sensitivity_random" (N,, a random map redrawn for every input)
    and "empty" (N,, the map is all zero: sensitivity 0 by definition).
    """
    x = inputs.detach()
    if maps is None:
        maps = explain(x, target)
    if noise is None:
        r = RADIUS * float(x.max() - x.min()) if radius is None else float(radius)
        noise = uniform_noise((samples, *x.shape), r, seed)
    samples = len(noise)
    perturbed = (x.unsqueeze(0) + noise).reshape(-1, *x.shape[1:])
    targets = target.repeat(samples)
    moved = torch.cat([explain(p, t) for p, t in zip(perturbed.split(EXPLAIN_CHUNK), targets.split(EXPLAIN_CHUNK))])
    own = _flat(maps)
    norm = own.norm(dim=1)
    change = (own.unsqueeze(0) - moved.reshape(samples, len(x), -1).to(torch.float64)).norm(dim=2).amax(0)
    value = torch.where(norm > 0, change / norm.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    noise_maps = random_maps((samples + 1, *own.shape), seed + 1).to(torch.float64)
    chance = (noise_maps[:1] - noise_maps[1:]).norm(dim=2).amax(0) / noise_maps[0].norm(dim=1)
    return {"sensitivity": value, "sensitivity_random": chance, "empty": norm == 0}


def completeness(model: nn.Module, inputs: Tensor, maps: Tensor, target: Tensor,
                 baseline: Tensor | None = None, seed: int = 0) -> dict[str, Tensor]:
    """How far Σ maps falls from the class score's change f(x) - f(baseline), per image (N,).

    maps (N, H, W) are attributions of the logit of `target` (channels summed, as
    core.explain.attribution's Integrated Gradients returns them); baseline: default black.
    Returns "sum", "delta" (f(x) - f(baseline)), "gap" (|sum - delta|), "relative_gap"
    (gap / |delta|; 0 where the score does not change, flagged "no_change") and
    "relative_gap_random" (a random map rescaled to each map's norm).
    """
    x = inputs.detach()
    base = (black(x) if baseline is None else baseline.detach()).expand_as(x)
    with torch.no_grad():
        logits = model(torch.cat([x, base])).to(torch.float64)
    picked = logits.gather(1, target.repeat(2).view(-1, 1)).squeeze(1)
    delta = picked[: len(x)] - picked[len(x):]
    own = _flat(maps)
    noise = random_maps(tuple(own.shape), seed + 1).to(torch.float64)
    noise = noise * (own.norm(dim=1) / noise.norm(dim=1)).unsqueeze(1)
    no_change = delta.abs() <= TINY

    def relative(total: Tensor) -> Tensor:
        return torch.where(no_change, 0.0, (total - delta).abs() / delta.abs().clamp_min(TINY))

    total = own.sum(1)
    return {"sum": total, "delta": delta, "gap": (total - delta).abs(), "relative_gap": relative(total),
            "relative_gap_random": relative(noise.sum(1)), "no_change": no_change}


def sensitivity_images_for(method: str) -> int | None:
    """How many probes the page measures max-sensitivity on: all (None) for gradient maps, COSTLY_IMAGES else."""
    return COSTLY_IMAGES if method in COSTLY else None


def explainer(model: nn.Module, method: str) -> Explain:
    """`explain(inputs, target)` with core.explain.attribution (read-only on the model)."""
    return lambda x, t: attribute(model, x, t, method)


def measure(model: nn.Module, inputs: Tensor, target: Tensor, method: str, maps: Tensor | None = None,
            samples: int = SAMPLES, faithfulness: bool = True, seed: int = 0,
            sensitivity_images: int | None = None) -> dict[str, Tensor]:
    """Every quality measure of `model`'s `method` maps on `inputs` (N, C, H, W) for `target` (N,), per image.

    Keys: sparseness, complexity, sensitivity (and each with "_random"), empty; with
    faithfulness also deletion_gain and insertion_gain (core.explain.faithfulness, 0 = chance);
    for Integrated Gradients also completeness (relative gap), completeness_random, no_change.
    sensitivity_images: measure max-sensitivity on about that many images, evenly spaced (it explains
    `samples` nudged copies of each: the costly part for Integrated Gradients); None: on all.
    """
    explain = explainer(model, method)
    maps = explain(inputs.detach(), target) if maps is None else maps
    noise = random_maps(tuple(maps.shape), seed + 2)
    out = {"sparseness": sparseness(maps), "sparseness_random": sparseness(noise),
           "complexity": complexity(maps), "complexity_random": complexity(noise), "empty": empty(maps)}
    pick = slice(None, None, max(1, len(maps) // sensitivity_images) if sensitivity_images else 1)
    steady = max_sensitivity(explain, inputs[pick], target[pick], maps[pick], samples=samples, seed=seed)
    out.update(sensitivity=steady["sensitivity"], sensitivity_random=steady["sensitivity_random"])
    if faithfulness:
        faith = deletion_insertion(model, inputs, maps, target, steps=8, random_orderings=RANDOM_ORDERINGS, seed=seed)
        out.update(deletion_gain=faith["deletion_gain"], insertion_gain=faith["insertion_gain"])
    if method == "integrated_gradients":
        gap = completeness(model, inputs, maps, target, seed=seed)
        out.update(completeness=gap["relative_gap"], completeness_random=gap["relative_gap_random"],
                   no_change=gap["no_change"])
    return out


def summary(measured: dict[str, Tensor]) -> dict[str, float | int]:
    """Means over the probes of `measure`'s output, flagged probes counted at their defined values, and the
    counts "probes", "empty" and "no_change" (for a visible note). Always finite."""
    flags = ("empty", "no_change")
    out: dict[str, float | int] = {"probes": len(measured["empty"])}
    out.update({flag: int(measured[flag].sum()) if flag in measured else 0 for flag in flags})
    for name, values in measured.items():
        if name not in flags:
            value = float(values.double().mean()) if len(values) else 0.0
            out[name] = value if math.isfinite(value) else 0.0
    return out


# name -> (label, which way is better, the chance column or None: chance is 0 by construction)
MEASURES: dict[str, tuple[str, str, str | None]] = {
    "sparseness": ("Sparseness (Gini index of |map|)", "higher", "sparseness_random"),
    "complexity": ("Complexity (entropy of |map|)", "lower", "complexity_random"),
    "sensitivity": ("Max-sensitivity (change under a 2 % nudge)", "lower", "sensitivity_random"),
    "deletion_gain": ("Deletion gain over random orderings", "higher", None),
    "insertion_gain": ("Insertion gain over random orderings", "higher", None),
    "completeness": ("Completeness gap |Σ map − Δ score| ÷ |Δ score|", "lower", "completeness_random"),
}


def compare(original: dict[str, Tensor], compressed: dict[str, Tensor]) -> pd.DataFrame:
    """One row per measure of `measure`'s outputs for the same probes: original, compressed, their change,
    its noise (twice the standard error of the paired per-probe differences), a random map's value
    (0 for the gains, where chance is 0 by construction) and "better" (higher | lower). Always finite."""
    rows = []
    for name, (label, better, chance) in MEASURES.items():
        if name not in original or name not in compressed:
            continue
        a, b = original[name].double(), compressed[name].double()
        diff = b - a
        noise = 2 * float(diff.std(correction=1)) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
        random = float(compressed[chance].double().mean()) if chance else 0.0
        rows.append({"measure": name, "label": label, "better": better, "original": float(a.mean()),
                     "compressed": float(b.mean()), "change": float(diff.mean()), "noise": noise, "random": random})
    table = pd.DataFrame(rows, columns=["measure", "label", "better", "original", "compressed", "change", "noise",
                                        "random"])
    return table.fillna(0.0)
