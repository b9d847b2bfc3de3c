"""A depthwise-separable CNN (MobileNet's building block, Howard et al. 2017), without BatchNorm.

conv 3x3 (16) -> ReLU -> pool -> [depthwise 3x3 -> ReLU -> pointwise 1x1 (32) -> ReLU] -> pool
-> [depthwise 3x3 -> ReLU -> pointwise 1x1 (64) -> ReLU] -> pool -> fc. Three pools keep the fc layer
small (on 28x28: 64 x 3 x 3 inputs), so most weights sit in the convolutions, as in MobileNet. A depthwise conv (groups equal to
its channels) has one 3x3 filter per input channel: removing channel c of the layer before it
removes depthwise filter c too, so the two are COUPLED (`coupled_channels`, used by structured
pruning in core/compression/units.py). Its MACs are positions x weight.numel() as for any conv.
"""
from __future__ import annotations

from torch import nn

from models import register_model


class Separable(nn.Sequential):
    """conv, ReLU, pool, then two depthwise-separable blocks, flatten and one fully connected layer."""

    # The pairs (layer, the depthwise conv that reads its channels one filter each).
    coupled_channels = (("0", "3"), ("5", "8"))  # conv 0 feeds depthwise 3, pointwise 5 feeds depthwise 8

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        channels, height, width = input_shape
        if height < 8 or width < 8:
            raise ValueError(f"separable needs inputs of at least 8x8 pixels, got {height}x{width}")
        super().__init__(
            nn.Conv2d(channels, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 0 1 2
            nn.Conv2d(16, 16, kernel_size=3, padding=1, groups=16), nn.ReLU(),                # 3 4 depthwise
            nn.Conv2d(16, 32, kernel_size=1), nn.ReLU(), nn.MaxPool2d(2),                     # 5 6 7 pointwise
            nn.Conv2d(32, 32, kernel_size=3, padding=1, groups=32), nn.ReLU(),                # 8 9 depthwise
            nn.Conv2d(32, 64, kernel_size=1), nn.ReLU(), nn.MaxPool2d(2),                     # 10 11 12 pointwise
            nn.Flatten(), nn.Linear(64 * (height // 8) * (width // 8), num_classes),          # 13 14
        )

@register_model("separable", "Depthwise-separable CNN: two depthwise 3x3 + pointwise 1x1 blocks, 16-32-64 channels (MobileNet-style)")
def separable(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return Separable(input_shape, num_classes)
