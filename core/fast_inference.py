"""A model's inference view with 2x2 max pooling as strided maxima: the same numbers, less CPU.

torch's CPU `max_pool2d` is slow on these small feature maps: under a class of students it was half
of every evaluation of the 1,000 test images (py-spy on the server: `MaxPool2d.forward` 16 % of all
samples, the convolutions 11 %). `inference_view(model)` returns a model that shares every
parameter and module of `model` (nothing is copied, nothing is changed) except that each plain
`nn.MaxPool2d(2)` is a `MaxPool2x2`. For inference only: the outputs are bit for bit the same (a
maximum is exact), but where a window ties its gradient would be split, so maps never use it.
(core/studies/layer_runs.py uses the same module for the sensitivity analysis' per-layer pass.)
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class MaxPool2x2(nn.Module):
    """nn.MaxPool2d(2) for inference: the larger of each 2x2 window by three torch.maximum of strided views.

    Written by hand because no library offers a faster exact 2x2 max pooling on CPU; on LeNet-5's first
    pooling (256 images, 6 x 28 x 28, one thread) it measured 0.55 ms against torch's 5.7 ms. Odd edges
    are dropped, as floor mode does; NaN propagates, as in max_pool2d.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
        rows = torch.maximum(x[..., ::2, :], x[..., 1::2, :])
        return torch.maximum(rows[..., ::2], rows[..., 1::2])


def _pair(value) -> tuple:
    return value if isinstance(value, tuple) else (value, value)


def swappable(module: nn.Module) -> bool:
    """A plain nn.MaxPool2d(2): stride 2, no padding, dilation 1, floor mode, no indices."""
    return (type(module) is nn.MaxPool2d and _pair(module.kernel_size) == (2, 2) and _pair(module.stride) == (2, 2)
            and _pair(module.padding) == (0, 0) and _pair(module.dilation) == (1, 1) and not module.ceil_mode
            and not module.return_indices)


def inference_view(model: nn.Module) -> nn.Module:
    """`model` itself when it has no plain 2x2 max pooling; otherwise a shallow copy of each module on the
    way to one (own child table, shared parameters, buffers and other children) with the pools swapped.

    The view runs the same forward code (a module's `forward` calls its children by attribute, which
    the copied child table answers), so any architecture works, not only nn.Sequential.
    """
    if swappable(model):
        return MaxPool2x2()
    children = {name: inference_view(child) for name, child in model.named_children()}
    if all(children[name] is child for name, child in model.named_children()):
        return model
    view = copy.copy(model)  # shares __dict__'s values: parameters, buffers, hooks, training flag
    view._modules = {**model._modules, **children}  # a new table: the original's stays as it was
    return view


def answers_on_rows(model: nn.Module, x: Tensor, rows: list[int], batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Predictions (R,) and softmax probabilities (R, classes) for x[rows], bit for bit what
    `core.metrics.evaluate(model, x, y, batch_size)` gives for those rows.

    Runs only the batches of `batch_size` that hold a row (the same batches `evaluate` cuts: a row's
    numbers can change in the last bit with the company it is computed in), so a page that names four
    test images' answers runs 256 images instead of all 1,000. The model is used as given (eval mode).
    """
    out_p, out_q = {}, {}
    with torch.inference_mode():
        view = inference_view(model)
        for start in sorted({row // batch_size * batch_size for row in rows}):
            logits = view(x[start:start + batch_size])
            probabilities = torch.softmax(logits.float(), dim=1)
            for row in rows:
                if start <= row < start + batch_size:
                    out_p[row], out_q[row] = logits[row - start].argmax(), probabilities[row - start]
    if not rows:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, 0)
    return torch.stack([out_p[r] for r in rows]), torch.stack([out_q[r] for r in rows])
