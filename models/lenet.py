"""LeNet-5: conv-pool-conv-pool-fc-fc-fc (LeCun et al. 1998)."""
from __future__ import annotations

from torch import nn

from models import register_model


@register_model("lenet5", "LeNet-5: two conv + pool stages, then three fully connected layers")
def lenet5(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels, height, width = input_shape
    # Both convolutions are padded ("same") so the net also fits 8x8 digits; on 28x28
    # inputs the feature maps are 28 -> 14 -> 14 -> 7, so the first fc layer sees 16*7*7.
    if height < 4 or width < 4:
        raise ValueError(f"lenet5 needs inputs of at least 4x4 pixels, got {height}x{width}")
    flat = 16 * (height // 4) * (width // 4)
    return nn.Sequential(
        nn.Conv2d(channels, 6, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )
