"""How faithful a saliency map is to its own model, measured against chance.

Deletion and insertion (Petsiuk et al. 2018, RISE): pixels are ranked by decreasing
saliency; deletion blacks them out `step` at a time, insertion starts from a blurred
image and puts them back. The score at each step is the model's probability of the
class it originally predicted, and the curve's area is
`auc = (sum - first/2 - last/2) / (n - 1)` over its n points. A faithful map has a low
deletion AUC (the probability falls fast) and a high insertion AUC.

An AUC alone also measures the model: a less confident model has a lower deletion AUC
whatever the map (a constant map's falls from 0.52 to 0.29 at 90 % pruning). So every
AUC comes with its chance level from the same model and images: the AUC of random pixel
orderings (fixed seed), and the GAIN over it (deletion: random - map, insertion: map -
random; 0 = no better than a random ordering). Ties in a map (Grad-CAM and Integrated
Gradients maps are mostly exact zeros) are broken at random with a fixed seed, never by
raster order, so a constant map is exactly a random ordering.

Normalized infidelity (Yeh et al. 2019, Captum) is only meaningful for SIGNED maps: an
absolute-value map cannot say whether a pixel change raises or lowers the score (the
audit measured saliency at the level of a constant or random map). It too comes with a
random-map chance level; its gain is relative, 1 - infidelity / random infidelity
(0 = chance, 1 = predicts every perturbation), because infidelity itself shrinks with
the model's logits.

Every step of every image and ordering goes through the model in one batched forward
pass; the unperturbed, all-black and blurred images are shared by every ordering.
Captum has infidelity but no deletion/insertion metric, hence the hand-written part.
"""
from __future__ import annotations

import torch
from captum.metrics import infidelity as captum_infidelity
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from core.explain.attribution import black as attribution_black

FORWARD_CHUNK = 256  # images per forward pass: ~2x faster than 1024 on LeNet-5 (cache-sized), bounded memory
RANDOM_ORDERINGS = 1  # random orderings per image for the chance level (64 probes: 64 orderings per point)


def black(x: Tensor) -> Tensor:
    """Black in pixel space for normalized images (each image's minimum per channel), (N, C, 1, 1).

    Normalized black is -mean/std (-0.425 on MNIST), not 0: see core.explain.attribution.black.
    """
    return attribution_black(x)


def blur(x: Tensor) -> Tensor:
    """The insertion start: a strong Gaussian blur (RISE uses sigma 5 on 224 px; scaled to the image)."""
    size = x.shape[-1]
    kernel = 2 * max(1, size // 6) + 1
    return gaussian_blur(x, [kernel, kernel], [kernel / 2.0, kernel / 2.0])


def _probabilities(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """p(target | x) for a batch whose targets repeat `target` (N,) along the leading axis."""
    out = []
    with torch.inference_mode():
        for chunk in x.split(FORWARD_CHUNK):
            out.append(model(chunk).softmax(dim=1))
    probs = torch.cat(out).view(-1, len(target), out[0].shape[1])
    return probs.gather(2, target.view(1, -1, 1).expand(probs.shape[0], -1, 1)).squeeze(2)


def area(curve: Tensor) -> Tensor:
    """Trapezoid area of curves (..., n) sampled at n evenly spaced points on [0, 1]."""
    n = curve.shape[-1]
    return (curve.sum(-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / (n - 1)


def ranks(maps: Tensor, generator: torch.Generator) -> Tensor:
    """rank[i, p] of every pixel of maps (N, H, W) (0 = most salient), ties broken at random by `generator`."""
    flat = maps.detach().reshape(len(maps), -1)
    shuffle = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)
    # A stable sort of a shuffled row keeps tied pixels in the shuffled order: random tie-breaking.
    within = torch.sort(flat.gather(1, shuffle), dim=1, descending=True, stable=True).indices
    order = shuffle.gather(1, within)
    return torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order))


def random_ranks(n: int, pixels: int, count: int, generator: torch.Generator) -> Tensor:
    """`count` random pixel orderings per image as ranks, (count, n, pixels)."""
    return torch.argsort(torch.rand((count, n, pixels), generator=generator), dim=2)


def deletion_insertion(model: nn.Module, inputs: Tensor, maps: Tensor, target: Tensor | None = None,
                       steps: int = 10, baseline: Tensor | None = None, random_orderings: int = 0,
                       seed: int = 0) -> dict[str, Tensor]:
    """Deletion and insertion curves and AUCs of `maps` (N, H, W) for `inputs` (N, C, H, W).

    target: (N,) classes (default: the model's prediction on `inputs`). The curves have
    steps + 1 points: 0, 1/steps, ..., all pixels removed / restored. baseline: what a
    deleted pixel becomes (default: black in pixel space). Ties in a map are broken at
    random (seed). Returns {"deletion", "insertion"} AUCs (N,) and {"deletion_curve",
    "insertion_curve"} (N, steps + 1); with random_orderings > 0 also the chance level,
    "deletion_random" and "insertion_random" (N,, mean AUC of that many random orderings)
    and "deletion_gain" (random - map), "insertion_gain" (map - random). Nothing is modified.
    """
    if maps.shape != (inputs.shape[0], *inputs.shape[2:]):
        raise ValueError(f"maps must be (N, H, W) matching inputs {tuple(inputs.shape)}, got {tuple(maps.shape)}")
    x = inputs.detach()
    n, c, h, w = x.shape
    if target is None:
        with torch.inference_mode():
            target = model(x).argmax(1)
    generator = torch.Generator().manual_seed(seed)
    rank = torch.cat([ranks(maps, generator)[None], random_ranks(n, h * w, random_orderings, generator)])
    inner = torch.round(torch.linspace(0, h * w, steps + 1)).long()[1:-1]  # the ends are shared
    chosen = (rank.unsqueeze(0) < inner.view(-1, 1, 1, 1)).view(-1, n, 1, h, w)  # (S-1)*(R+1) blocks of N
    base, start = (black(x) if baseline is None else baseline).expand_as(x), blur(x)
    deleted = torch.where(chosen, base, x).view(-1, c, h, w)
    inserted = torch.where(chosen, x, start).view(-1, c, h, w)
    scores = _probabilities(model, torch.cat([x, base, start, deleted, inserted]), target)  # (3 + 2M, N)
    full, empty, blurred = scores[0], scores[1], scores[2]
    orderings = len(rank)
    middle = scores[3:].view(2, len(inner), orderings, n).permute(0, 2, 3, 1)  # (2, R+1, N, S-1)

    def curve(first: Tensor, part: Tensor, last: Tensor) -> Tensor:
        return torch.cat([first.expand(orderings, n)[..., None], part, last.expand(orderings, n)[..., None]], -1)

    deletion, insertion = curve(full, middle[0], empty), curve(blurred, middle[1], full)  # (R+1, N, S+1)
    out = {"deletion": area(deletion[0]), "insertion": area(insertion[0]),
           "deletion_curve": deletion[0], "insertion_curve": insertion[0]}
    if random_orderings > 0:
        out["deletion_random"] = area(deletion[1:]).mean(0)
        out["insertion_random"] = area(insertion[1:]).mean(0)
        out["deletion_gain"] = out["deletion_random"] - out["deletion"]
        out["insertion_gain"] = out["insertion"] - out["insertion_random"]
    return out


def infidelity(model: nn.Module, inputs: Tensor, maps: Tensor, target: Tensor, n_samples: int = 10,
               noise: float = 0.1, seed: int = 0) -> Tensor:
    """Captum's normalized infidelity (Yeh et al. 2019) of `maps` (N, H, W), per image (N,).

    The perturbations are Gaussian (std `noise`, in normalized pixel units) from a local
    generator, so the score is reproducible and the global RNG is left alone. Lower is
    better; normalize=True makes it independent of the map's scale. Meaningful for signed
    maps only (see the module docstring); compare it with `infidelity_against_random`.
    """
    generator = torch.Generator().manual_seed(seed)

    def perturb(x: Tensor) -> tuple[Tensor, Tensor]:
        noise_ = torch.randn(x.shape, generator=generator) * noise
        return noise_, x - noise_

    attributions = maps.detach().unsqueeze(1).expand_as(inputs) / inputs.shape[1]
    with torch.no_grad():
        return captum_infidelity(model, perturb, inputs.detach(), attributions, target=target,
                                 n_perturb_samples=n_samples, normalize=True).detach()


def infidelity_against_random(model: nn.Module, inputs: Tensor, maps: Tensor, target: Tensor,
                              n_samples: int = 10, noise: float = 0.1, seed: int = 0,
                              random_maps: int = RANDOM_ORDERINGS) -> dict[str, Tensor | float]:
    """Infidelity of signed `maps` (N, H, W) and of random signed maps, in one Captum call.

    Random maps are standard Gaussian per pixel (seed + 1). Returns "infidelity" (N,),
    "infidelity_random" (N,, mean over `random_maps` maps) and "infidelity_gain", the float
    1 - mean infidelity / mean random infidelity (0 = chance, 1 = perfect; 0.0 when the
    random infidelity is 0, i.e. the model does not react to the perturbations at all).
    """
    n = len(inputs)
    noise_maps = torch.randn((random_maps * n, *maps.shape[1:]), generator=torch.Generator().manual_seed(seed + 1))
    x = inputs.detach().repeat(random_maps + 1, 1, 1, 1)
    scores = infidelity(model, x, torch.cat([maps.detach(), noise_maps]), target.repeat(random_maps + 1),
                        n_samples=n_samples, noise=noise, seed=seed)
    own, chance = scores[:n], scores[n:].view(random_maps, n).mean(0)
    floor = float(chance.mean())
    return {"infidelity": own, "infidelity_random": chance,
            "infidelity_gain": 1.0 - float(own.mean()) / floor if floor > 0 else 0.0}
