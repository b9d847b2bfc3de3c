"""Small reference architectures and a registry, after timm's `create_model`.

Every model takes inputs shaped (N, C, H, W) and returns logits (N, num_classes).
`create_model("unknown", ...)` fails loudly and lists the registered names.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

ModelFn = Callable[[tuple[int, int, int], int], nn.Module]
_REGISTRY: dict[str, ModelFn] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str) -> Callable[[ModelFn], ModelFn]:
    """Register a builder `fn(input_shape, num_classes) -> nn.Module` under `name`."""

    def wrap(fn: ModelFn) -> ModelFn:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return wrap


def list_models() -> list[str]:
    """Names of all registered models, in registration order."""
    return list(_REGISTRY)


def describe_model(name: str) -> str:
    """One-line human description of a registered model."""
    _check(name)
    return _DESCRIPTIONS[name]


def create_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build a freshly initialised model (uses the global torch RNG for its weights)."""
    _check(name)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return _REGISTRY[name](tuple(input_shape), num_classes)


def _check(name: str) -> None:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")


# Importing the modules registers their models.
from models import lenet, mlp, resnet, separable  # noqa: E402,F401
