"""Weight sharing (registered step "share"): each layer's weights take one of 2^b shared values.

As in Deep Compression (Han et al. 2016): per layer, k-means with k = 2^b clusters over the
layer's weights, started from LINEAR initialization (k centroids evenly spaced over
[min w, max w], which Han et al. found best: it keeps the few large weights, which matter most,
their own centroids). scikit-learn's `KMeans(n_clusters=k, init=<linspace>, n_init=1)` does the
clustering. Every weight is then replaced by its centroid; a layer is stored as b-bit indices plus
a codebook of k fp32 values.

Combined with pruning (which runs first, order 20): only the NONZERO weights are clustered, so
pruned weights stay exactly zero (the sparsity mask stores them) and the k centroids are spent on
the weights that are left. A layer with no more than k distinct nonzero values is left as it is
(it is its own codebook), so applying the step twice changes nothing.

Uniform quantization (order 40) also sets the stored values: with both set, sharing applies
(`replaces`), the pipeline skips quantization and `cfg.problems()` says so.

k-means runs once per original model, layer, bit width and the weights it is given (a digest of
them: that covers the pruning setting and anything before it), through `context.memo`; a slider
move back to a setting seen before only looks its result up.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

from core.compression.steps import Context, Step, WeightCode, control, register
from core.layers import stored_layers

SHARE_OFF = 0
SHARE_BITS = (SHARE_OFF, 1, 2, 3, 4, 5, 6, 7, 8)
CODEBOOK_BITS = 32  # each shared value is an fp32 number
SHARE_HELP = ("Each layer's weights are grouped into 2^b clusters by k-means; every weight becomes its "
              "cluster's centre, so the layer is stored as b-bit indices plus a small table of 2^b values. "
              "Pruned weights stay exactly zero (only the others are clustered). Off: no sharing.")


def cluster(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (m,) float32, labels (n,) int) of 1-D `values` (n,) grouped into at most `k` clusters.

    k-means from linear initialization (k points evenly spaced over [min, max]), one run. With no
    more than k distinct values the distinct values are the centroids (no clustering: exact).
    `values` is not modified.
    """
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    distinct, inverse = np.unique(values, return_inverse=True)
    if len(distinct) <= k:
        return distinct, inverse.reshape(-1)
    init = np.linspace(values.min(), values.max(), k, dtype=np.float32).reshape(-1, 1)
    with warnings.catch_warnings(), threadpool_limits(1):  # 2 cores shared: one thread, as torch here
        warnings.simplefilter("ignore", ConvergenceWarning)  # a cluster left empty is relocated: fine
        fitted = KMeans(n_clusters=k, init=init, n_init=1).fit(values.reshape(-1, 1))
    return fitted.cluster_centers_[:, 0].astype(np.float32), fitted.labels_


def share_weight(weight: Tensor, bits: int) -> Tensor:
    """A new tensor: `weight` with its nonzero values replaced by their k-means centroid (2^bits of them).

    Zeros stay exactly zero; same shape and dtype; `weight` is untouched (no cache: see `Share.apply`).
    """
    centroids, labels = _codebook(weight, bits)
    return _rebuild(weight, centroids, labels)


def stored_codes(model: nn.Module) -> dict[str, tuple[Tensor, Tensor]]:
    """Each prunable layer of a weight-shared `model` as stored: {layer: (codebook (m,) float32, indices)}.

    indices has the weight's shape, dtype uint8 when m < 256 (else int64): 0 for a zero (pruned)
    weight, k + 1 for codebook[k]; so `cat([0, codebook])[indices]` is the weight. For Export.
    The model is only read.
    """
    out = {}
    for name, module in stored_layers(model):
        flat = module.weight.detach().to(torch.float32).reshape(-1)
        codebook, inverse = torch.unique(flat[flat != 0], return_inverse=True)
        indices = torch.zeros(flat.numel(), dtype=torch.uint8 if codebook.numel() < 256 else torch.int64)
        indices[flat != 0] = (inverse + 1).to(indices.dtype)
        out[name] = (codebook, indices.view(module.weight.shape))
    return out


def _codebook(weight: Tensor, bits: int) -> tuple[np.ndarray, np.ndarray]:
    flat = weight.detach().to(torch.float32).reshape(-1)
    values = flat[flat != 0].numpy()
    if values.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    centroids, labels = cluster(values, 2**bits)
    # uint8 labels: k <= 256, and the cache holds one per nonzero weight and setting.
    return centroids, labels.astype(np.uint8 if len(centroids) <= 256 else np.int64)


def _rebuild(weight: Tensor, centroids: np.ndarray, labels: np.ndarray) -> Tensor:
    flat = weight.detach().to(torch.float32).reshape(-1)
    out = torch.zeros_like(flat)
    if labels.size:
        out[flat != 0] = torch.from_numpy(centroids)[torch.from_numpy(labels.astype(np.int64))]
    return out.view(weight.shape).to(weight.dtype)


def _digest(weight: Tensor) -> str:
    data = weight.detach().to(torch.float32).contiguous().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@register("share", order=30)
@dataclass(frozen=True)
class Share(Step):
    """Weight sharing: per layer, k-means with 2^b shared values over the nonzero weights."""

    title = "Weight sharing"
    summary = ("Each layer's weights replaced by the nearest of 2^b shared values (k-means), stored as "
               "b-bit indices plus a table of the values.")
    replaces = ("quantize",)
    pairs_with = ("prune",)  # Deep Compression: prune, then share the surviving weights

    share_bits: int = control(SHARE_OFF, label="Shared values per layer", url="share", widget="select_slider",
                              choices=SHARE_BITS, labels={SHARE_OFF: "off", **{b: f"{2**b} ({b} bit{'s' * (b > 1)})"
                                                                               for b in SHARE_BITS[1:]}},
                              stops=SHARE_BITS, unit="-bit", stop_labels={SHARE_OFF: "off"}, help=SHARE_HELP)

    def active(self) -> bool:
        return self.share_bits != SHARE_OFF

    def describe(self) -> str:
        return f"{self.share_bits}-bit weight sharing ({2**self.share_bits} k-means values per layer)"

    def sweep_points(self) -> tuple[dict[str, Any], ...]:
        return tuple({"share_bits": b} for b in (8, 6, 5, 4, 3, 2, 1))

    def notes(self) -> list[str]:
        return ["Sharing sets the stored values, so a bit width set under Quantization is not used "
                "while sharing is on."] if self.active() else []

    def apply(self, model: nn.Module, context: Context) -> None:
        for name, module in stored_layers(model):  # after low-rank: each factor has its own codebook
            weight = module.weight
            key = ("share", name, self.share_bits, _digest(weight))
            centroids, labels = context.memo(key, lambda w=weight: _codebook(w, self.share_bits))
            weight.copy_(_rebuild(weight, centroids, labels))

    def weight_code(self, weight: Tensor) -> WeightCode | None:
        """b-bit indices (zeros in the mask when the layer has any) and a codebook of fp32 values.

        The codebook holds the values the layer uses: 2^b, or fewer where fewer weights are left.
        With zeros, the code has one more value (0) for a dense layout; under a mask or CSR a nonzero
        costs only its b-bit index (core.metrics.coded_storage_bits)."""
        if not self.active():
            return None
        nonzero = weight[weight != 0]
        used = max(1, min(2**self.share_bits, int(torch.unique(nonzero).numel())))
        has_zero = nonzero.numel() < weight.numel()
        return WeightCode(levels=used + has_zero, has_zero=has_zero, params_per_group=used * CODEBOOK_BITS,
                          groups="tensor")
