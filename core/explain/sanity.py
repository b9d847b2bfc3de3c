"""The cascading model-randomization test (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

The prunable layers (Linear, Conv2d) of a COPY of the model are re-initialized one
after another from the top (output layer) down, cumulatively, and after each step the
maps are compared with the maps of the untouched model (`saliency_agreement`). A
method that explains the model must produce different maps once the learned weights
are gone: similarity should fall toward 0. If it stays near 1 while the model is
destroyed, the map shows the input (edges, ink) rather than the model.

Choices, and why:
- Re-initialization is PyTorch's default for Linear/Conv2d (kaiming_uniform_ with
  a = sqrt(5); bias uniform in ±1/sqrt(fan_in)) drawn from a LOCAL torch.Generator
  seeded with `seed`: the process-wide RNG (shared with other sessions' threads) is
  neither read nor changed, and the same seed gives the same random layers.
- The target class is fixed across steps: the unrandomized model's prediction (or
  the `target` given, e.g. the original model's prediction when testing the
  compressed one). Letting the randomized model pick its own class would mix "the
  map changed" with "the question changed".
- A compressed model keeps its zero pattern: re-initialized weights are multiplied by
  the mask of its zero weights (pruned, or rounded to zero by quantization). The
  test asks whether the map depends on the learned VALUES; the architecture,
  including which connections pruning removed, is held fixed. Re-initialized weights
  are not re-quantized (the model is random either way).
- Biases of re-initialized layers are re-drawn too, as in the paper.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from core.explain.attribution import attribute, methods_for, saliency_agreement
from core.layers import factors, layer_labels, prunable_layers

METRICS = ("spearman", "spearman_abs", "ssim", "topk")  # rank correlations on pixels nonzero in either map


def _check(model: nn.Module, method: str) -> None:
    if method not in methods_for(model):
        if method == "grad_cam":
            raise ValueError("Grad-CAM needs a convolutional model; this model has no Conv2d layer, "
                             "so the randomization test cannot run with it. Pick another method.")
        raise ValueError(f"unknown attribution method {method!r}; choose one of: {', '.join(methods_for(model))}")


def _reinitialize(module: nn.Module, generator: torch.Generator) -> None:
    """Draw new weights (and bias) for a Linear/Conv2d in place, keeping its exact zeros."""
    weight = module.weight
    keep = (weight != 0).to(weight.dtype)
    fresh = torch.empty_like(weight)
    nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)  # torch's own default
    weight.copy_(fresh * keep)
    if getattr(module, "bias", None) is not None:
        fan_in = weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        module.bias.copy_(torch.empty_like(module.bias).uniform_(-bound, bound, generator=generator))


def cascade(model: nn.Module, seed: int = 0) -> Iterator[tuple[int, str, str, nn.Module]]:
    """Yield (step, layer name, label, twin) for step 0 (nothing randomized) and after each re-init.

    `twin` is ONE private deep copy of `model`, re-initialized from the output layer down;
    it changes between yields (use it before advancing). `model` is never touched.
    """
    twin = copy.deepcopy(model)
    labels = layer_labels(twin)
    generator = torch.Generator().manual_seed(seed)
    yield 0, "", "none", twin
    for step, (name, module) in enumerate(reversed(prunable_layers(twin)), start=1):
        with torch.no_grad():
            for layer in factors(module):  # a low-rank layer's two factors, else the layer itself
                _reinitialize(layer, generator)
        yield step, name, f"+ {labels[name]}", twin


def _fixed_target(model: nn.Module, inputs: Tensor, target: Tensor | int | None) -> Tensor | int:
    # no_grad, not inference_mode, and a clone of a given tensor: Captum gathers the target
    # inside an autograd graph, which refuses tensors created under inference_mode.
    if isinstance(target, Tensor):
        return target.detach().clone()
    if target is not None:
        return target
    with torch.no_grad():
        return model(inputs).argmax(dim=1)


def cascading_randomization(model: nn.Module, inputs: Tensor, target: Tensor | int | None = None,
                            method: str = "saliency", seed: int = 0, **options) -> pd.DataFrame:
    """Similarity of maps to the unrandomized ones as layers are re-initialized from the top.

    inputs (N, C, H, W), only read; target: class index, (N,) indices, or None for the
    unrandomized model's predictions (fixed across steps). options go to `attribute`.
    Rows: step 0 ("none", similarity 1 by definition) then one per prunable layer,
    cumulative. Columns: step, layer (module name, "" at step 0), label (readable),
    <metric>_mean and <metric>_std (over the N images, population std) for each of
    METRICS (`saliency_agreement`: rank correlations on the pixels where either map is
    nonzero), and degenerate (share of images whose rank correlation was undefined, e.g.
    an all-zero map once the output layer is all zeros; it is then 1 or 0, never NaN). `model` is never changed.
    Raises ValueError for grad_cam on a model without Conv2d layers.
    """
    _check(model, method)
    fixed = _fixed_target(model, inputs, target)
    rows, reference = [], None
    for step, name, label, twin in cascade(model, seed):
        maps = attribute(twin, inputs, fixed, method, **options)
        reference = maps if reference is None else reference
        scores = saliency_agreement(reference, maps)
        row = {"step": step, "layer": name, "label": label}
        for metric in METRICS:
            values = scores[metric].numpy().astype(np.float64)
            row[f"{metric}_mean"], row[f"{metric}_std"] = float(values.mean()), float(values.std())
        row["degenerate"] = float(scores["degenerate"].float().mean())
        rows.append(row)
    return pd.DataFrame(rows)


def randomized_maps(model: nn.Module, image: Tensor, target: Tensor | int | None = None,
                    method: str = "saliency", seed: int = 0, **options) -> tuple[list[str], Tensor]:
    """The map of one image at every randomization step: (labels, maps (S+1, H, W) float32).

    image (C, H, W) or (1, C, H, W), only read. Same steps, seed, target rule and
    re-initialization as `cascading_randomization` (same seed = same random layers), so
    the pictures match the curve. `model` is never changed.
    """
    _check(model, method)
    x = image.unsqueeze(0) if image.dim() == 3 else image
    if x.dim() != 4 or len(x) != 1:
        raise ValueError(f"expected one image (C, H, W) or (1, C, H, W), got {tuple(image.shape)}")
    fixed = _fixed_target(model, x, target)
    labels, maps = [], []
    for _, _, label, twin in cascade(model, seed):
        labels.append(label)
        maps.append(attribute(twin, x, fixed, method, **options)[0])
    return labels, torch.stack(maps)
