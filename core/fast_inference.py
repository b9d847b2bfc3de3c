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


# ---- convolutions on oneDNN tensors (the sensitivity analysis' evaluation of convolution settings)
# torch's CPU convolution runs oneDNN, but on ordinary (NCHW) tensors it reorders its input and output to
# oneDNN's blocked layout on every call. A chain of convolutions, poolings and ReLUs on oneDNN tensors
# (`Tensor.to_mkldnn`) reorders once: LeNet-5's conv1 -> pool -> ReLU -> conv2 -> pool -> ReLU on 256
# images measured 4.6 ms as plain tensors (with MaxPool2x2) and 3.6 ms on oneDNN tensors, the same numbers
# bit for bit (the same oneDNN kernel; maxima and ReLU are exact). Used only where `onednn_agrees` has
# checked that on this machine, for these shapes.
_AGREES: dict[tuple, bool] = {}


def _runs_on_onednn(module: nn.Module) -> bool:
    if type(module) is nn.Conv2d:
        return module.padding_mode == "zeros" and isinstance(module.padding, tuple)
    return (type(module) is nn.ReLU and not module.inplace) or isinstance(module, MaxPool2x2)


def onednn_parts(layer: nn.Module, after: list[nn.Module]) -> tuple[nn.Sequential, nn.Sequential] | None:
    """(head, tail) of the modules `after` a Conv2d `layer`: the head (convolutions, 2x2 poolings, ReLUs that
    follow it) runs on oneDNN tensors, the tail on dense ones; None when `layer` is not such a Conv2d or this
    torch has no oneDNN. Poolings become nn.MaxPool2d(2) (oneDNN's pooling; the same maxima)."""
    if not (torch.backends.mkldnn.is_available() and type(layer) is nn.Conv2d and _runs_on_onednn(layer)):
        return None
    cut = next((i for i, m in enumerate(after) if not _runs_on_onednn(m)), len(after))
    head = [nn.MaxPool2d(2) if isinstance(m, MaxPool2x2) else m for m in after[:cut]]
    return nn.Sequential(*head), nn.Sequential(*after[cut:])


def onednn_threads() -> None:
    """Give the calling thread torch's number of threads for oneDNN too (call it on each worker thread).

    oneDNN's layout reorders run OpenMP teams sized by the calling thread's own OpenMP setting, and a thread
    Python starts has the process default (every core), not `torch.set_num_threads`' value: without this the
    sensitivity analysis' two workers ran four threads on two cores (1.35 s CPU instead of 0.91)."""
    torch.set_num_threads(torch.get_num_threads())


def onednn_agrees(layer: nn.Module, parts: tuple[nn.Sequential, nn.Sequential], after: nn.Module, h: Tensor) -> bool:
    """Do `layer` and `parts` on oneDNN tensors give `after(layer(h))` and `layer(h)` bit for bit on h?

    Checked once per process for each shape of h and of the convolutions (oneDNN picks its kernel by shape,
    not by values), under inference mode."""
    head, tail = parts
    key = (tuple(h.shape), h.dtype, *[(tuple(m.weight.shape), m.bias is None, m.padding, m.stride, m.dilation,
                                       m.groups) for m in (layer, *head) if isinstance(m, nn.Conv2d)], len(tail))
    if key not in _AGREES:
        out, fast = layer(h), layer(h.to_mkldnn())
        _AGREES[key] = torch.equal(out, fast.to_dense()) and torch.equal(after(out), tail(head(fast).to_dense()))
    return _AGREES[key]
