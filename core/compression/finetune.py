"""Recovery fine-tuning: a compressed model trained a little more with its compression held fixed.

Compression without retraining loses accuracy fast; Han et al. (2015, 2016) retrain what is left.
What is held fixed and what is trained, per family:

- Pruning: the mask. torch.nn.utils.prune (`custom_from_mask`: the forward uses weight_orig * mask)
  gives pruned weights no gradient, so they stay zero (`fine_tune`).
- Weight sharing: the codebook's assignments (which weight uses which shared value) and the zeros.
  Each layer is `codebook[index]` through a torch parametrization whose parameter is the codebook
  itself, so autograd gives each shared value the SUM of the gradients of the weights that use it,
  exactly Han et al.'s centroid update (`fine_tune_codebooks`).
- Uniform weight quantization: quantization-aware training with the straight-through estimator.
  The latent float weights are trained; the forward uses their code (`quantize_weight`, the
  quantization step's own function, so the grid follows the latent weights as compress() would set
  it) and the backward passes the gradient through the rounding as if it were the identity
  (w + (q(w) - w).detach()). The mask holds pruned weights at zero (`fine_tune_quantized`).

`compress_fine_tuned` runs the steps that make the structure (up to pruning), fine-tunes as above
for the code in use (sharing if set, else quantization when asked for `quantization_aware`, else
the mask alone, then rounding), then runs the
remaining steps on the result: sharing leaves an already shared layer as it is, quantization of
the QAT-trained latent weights gives the very codes the forward used, and activation ranges are
calibrated on the fine-tuned model (they are not trained).

After low-rank factorization the weights that are trained are the factors (core.layers.stored_layers):
the rank is held fixed by the shapes of the two factor layers, and their zeros (from pruning after
low-rank) by the mask, as for any layer. The factored model is fine-tuned as a whole, like any other.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize, prune

from core.compression import CompressionConfig, compress
from core.compression.activations import CALIBRATION_IMAGES
from core.compression.quantization import Quantize, quantize_weight
from core.compression.steps import calibration_of, calibration_or, set_calibration
from core.layers import stored_layers
from core.training import train_one_epoch


def _train_copy(model: nn.Module, x: Tensor, y: Tensor, epochs: int, lr: float, batch_size: int, seed: int,
                hold: Callable[[nn.Module], None], release: Callable[[nn.Module], None]) -> nn.Module:
    """A copy of `model`, `hold` on each prunable layer, trained `epochs` on (x, y), then `release`d."""
    tuned = copy.deepcopy(model)
    images = calibration_of(model)
    if images is not None:
        set_calibration(tuned, images)  # calibrates like its source
    tuned.requires_grad_(True)
    layers = stored_layers(tuned)  # after low-rank: the two factors (their shapes hold the rank)
    orders = [list(module._parameters) for _, module in layers]
    for _, module in layers:
        hold(module)
    if epochs > 0:
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
        for _ in range(epochs):
            train_one_epoch(tuned, optimizer, x, y, batch_size, generator)
    with torch.no_grad():
        for (_, module), order in zip(layers, orders):
            release(module)
            for name in order:  # `weight` comes back last: keep the input's order (state_dict lines up)
                module._parameters[name] = module._parameters.pop(name)
    tuned.requires_grad_(any(p.requires_grad for p in model.parameters()))
    return tuned.eval()


def fine_tune(model: nn.Module, x: Tensor, y: Tensor, epochs: int, lr: float = 1e-3,
              batch_size: int = 64, seed: int = 0) -> nn.Module:
    """A copy of `model` trained for `epochs` on (x, y) with every zero weight held at zero.

    A factored (low-rank) layer trains its two factors: its rank stays what it is.
    x: (N, C, H, W) training images, y: (N,) labels. The input model is not modified;
    the copy is returned in eval mode, with no pruning hooks left on it.
    """
    def hold(module: nn.Module) -> None:
        prune.custom_from_mask(module, "weight", (module.weight.detach() != 0).to(module.weight.dtype))

    def release(module: nn.Module) -> None:
        prune.remove(module, "weight")

    return _train_copy(model, x, y, epochs, lr, batch_size, seed, hold, release)


class SharedWeight(nn.Module):
    """Parametrization: a weight as `[0, codebook][index]`; its parameter is the codebook (m,).

    index (n,) is 0 for a zero weight, 1 + k for the k-th shared value; fixed at construction.
    """

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        flat = weight.detach().reshape(-1)
        codebook, inverse = torch.unique(flat[flat != 0], return_inverse=True)
        index = torch.zeros(flat.numel(), dtype=torch.long)
        index[flat != 0] = inverse + 1
        self.register_buffer("index", index)
        self.shape = tuple(weight.shape)

    def forward(self, codebook: Tensor) -> Tensor:
        return torch.cat([codebook.new_zeros(1), codebook])[self.index].view(self.shape)

    def right_inverse(self, weight: Tensor) -> Tensor:
        flat = weight.detach().reshape(-1)
        return torch.unique(flat[flat != 0]).to(weight.dtype)


def fine_tune_codebooks(model: nn.Module, x: Tensor, y: Tensor, epochs: int, lr: float = 1e-3,
                        batch_size: int = 64, seed: int = 0) -> nn.Module:
    """A copy of a weight-shared `model` whose shared values (centroids) are trained on (x, y).

    Which weight uses which value, and the zeros, are held fixed: every layer keeps at most as many
    distinct nonzero values as it had. Biases train too. The input model is not modified.
    """
    def hold(module: nn.Module) -> None:
        parametrize.register_parametrization(module, "weight", SharedWeight(module.weight))

    def release(module: nn.Module) -> None:
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)

    return _train_copy(model, x, y, epochs, lr, batch_size, seed, hold, release)


class StraightThrough(nn.Module):
    """Parametrization: the latent weight (masked) in its uniform code forward, the identity backward."""

    def __init__(self, weight: Tensor, code: Quantize) -> None:
        super().__init__()
        self.register_buffer("mask", (weight.detach() != 0).to(weight.dtype))
        self.code = code

    def forward(self, latent: Tensor) -> Tensor:
        kept = latent * self.mask
        c = self.code
        coded = quantize_weight(kept, c.weight_bits, c.quant_scheme, c.quant_granularity, c.quant_range)
        return kept + (coded - kept).detach()


def fine_tune_quantized(model: nn.Module, code: Quantize, x: Tensor, y: Tensor, epochs: int, lr: float = 1e-3,
                        batch_size: int = 64, seed: int = 0) -> nn.Module:
    """A copy of `model` trained quantization-aware (straight-through estimator) for the uniform `code`.

    Returns the trained LATENT float weights (zeros held), to be quantized by `compress` as the forward
    did. The input model is not modified.
    """
    def hold(module: nn.Module) -> None:
        parametrize.register_parametrization(module, "weight", StraightThrough(module.weight, code))

    def release(module: nn.Module) -> None:
        mask = module.parametrizations.weight[0].mask
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        module.weight.mul_(mask)

    return _train_copy(model, x, y, epochs, lr, batch_size, seed, hold, release)


def compress_fine_tuned(model: nn.Module, cfg: CompressionConfig, x: Tensor, y: Tensor, epochs: int,
                        lr: float = 1e-3, seed: int = 0, quantization_aware: bool = False) -> nn.Module:
    """Compress as `cfg` says with recovery fine-tuning for `epochs` on (x, y) (see the module docstring).

    The structure (steps up to pruning) first; then, with epochs > 0: sharing set, its centroids are
    trained (assignments and zeros fixed); else, quantization set and `quantization_aware`,
    quantization-aware training with the straight-through estimator (mask fixed); else, pruning set,
    the weights left are trained (mask fixed) and quantization, if set, rounds them afterwards (the
    default, which the Trade-offs tables reproduce: one fine-tuned model serves every bit width).
    Then the remaining steps. With epochs == 0 this equals `compress(model, cfg)`. The input model is
    not modified.
    """
    # The steps up to pruning change which weights exist; the later ones (codes, activations) are
    # applied to the fine-tuned weights. They keep exact zeros, so the mask survives the second pass.
    first, rest = cfg.split("prune")
    tuned = compress(model, first)
    running = {step.name for step in cfg.pipeline()}
    if epochs > 0 and "share" in running:
        tuned = fine_tune_codebooks(compress(tuned, cfg.only("share")), x, y, epochs, lr=lr, seed=seed)
    elif epochs > 0 and "quantize" in running and quantization_aware:
        tuned = fine_tune_quantized(tuned, cfg.step("quantize"), x, y, epochs, lr=lr, seed=seed)
    elif epochs > 0 and first.pipeline():  # low-rank, pruning or both lost something: train what is left
        tuned = fine_tune(tuned, x, y, epochs, lr=lr, seed=seed)
    return compress(tuned, rest, calibration=calibration_or(model, x, CALIBRATION_IMAGES)) \
        if rest.pipeline() else tuned
