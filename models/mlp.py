"""Fully connected models: a small MLP and LeNet-300-100 (LeCun et al. 1998)."""
from __future__ import annotations

import math

from torch import nn

from models import register_model


def _fully_connected(input_shape: tuple[int, int, int], hidden: tuple[int, ...], num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_model("mlp", "MLP with two hidden layers (128, 64)")
def mlp(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return _fully_connected(input_shape, (128, 64), num_classes)


@register_model("lenet300", "LeNet-300-100: fully connected, hidden layers of 300 and 100")
def lenet300(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return _fully_connected(input_shape, (300, 100), num_classes)


@register_model("mlp32", "Small MLP with one hidden layer of 32 (a student for distillation)")
def mlp32(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    # About a quarter of LeNet-5's parameters on 28x28 digits: the registry's other models are all
    # at least as large as LeNet-5 there, so without it no student would be smaller than the teacher.
    return _fully_connected(input_shape, (32,), num_classes)
