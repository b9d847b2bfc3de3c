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
