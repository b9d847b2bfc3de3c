"""Fine-tuning a pruned model with its mask held fixed, then quantizing (Han et al. 2015).

Pruning without retraining loses accuracy fast; Han et al. retrain the surviving weights
with the pruned ones held at zero. Here the mask is held by torch.nn.utils.prune
(`custom_from_mask`: the forward uses weight_orig * mask, so pruned weights get no
gradient and stay zero), then made permanent; quantization is applied afterwards, as
in the app's normal order (prune, then quantize).

After low-rank factorization the weights that are trained are the factors (core.layers.stored_layers):
the rank is held fixed by the shapes of the two factor layers, and their zeros (from pruning after
low-rank) by the mask, as for any layer. The factored model is fine-tuned as a whole, like any other.
"""
from __future__ import annotations

import copy
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from core.compression import CompressionConfig, compress, get_step, ordered
from core.layers import stored_layers
from core.training import train_one_epoch


def fine_tune(model: nn.Module, x: Tensor, y: Tensor, epochs: int, lr: float = 1e-3,
              batch_size: int = 64, seed: int = 0) -> nn.Module:
    """A copy of `model` trained for `epochs` on (x, y) with every zero weight held at zero.

    A factored (low-rank) layer trains its two factors: its rank stays what it is.
    x: (N, C, H, W) training images, y: (N,) labels. The input model is not modified;
    the copy is returned in eval mode, with no pruning hooks left on it.
    """
    tuned = copy.deepcopy(model)
    tuned.requires_grad_(True)
    layers = stored_layers(tuned)
    for _, module in layers:
        prune.custom_from_mask(module, "weight", (module.weight.detach() != 0).to(module.weight.dtype))
    if epochs > 0:
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
        for _ in range(epochs):
            train_one_epoch(tuned, optimizer, x, y, batch_size, generator)
    for _, module in layers:
        prune.remove(module, "weight")
    tuned.requires_grad_(any(p.requires_grad for p in model.parameters()))
    return tuned.eval()


def compress_fine_tuned(model: nn.Module, cfg: CompressionConfig, x: Tensor, y: Tensor, epochs: int,
                        lr: float = 1e-3, seed: int = 0) -> nn.Module:
    """Factor and prune as `cfg` says, fine-tune `epochs` (factors and masks fixed in shape), then quantize.

    With epochs == 0 this equals `compress(model, cfg)`. The input model is not modified.
    """
    # The steps up to pruning change which weights exist; the later ones (codes, activations) are
    # applied to the fine-tuned weights. They keep exact zeros, so the mask survives the second pass.
    before = [name for name in ordered() if get_step(name).order <= get_step("prune").order]
    after = [name for name in ordered() if name not in before]
    pruned = compress(model, cfg.only(*before))
    if epochs > 0 and cfg.only(*before).pipeline():  # low-rank, pruning or both made the model lose something
        pruned = fine_tune(pruned, x, y, epochs, lr=lr, seed=seed)
    rest = cfg.only(*after)
    return compress(pruned, rest) if rest.pipeline() else pruned
