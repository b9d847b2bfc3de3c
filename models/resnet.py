"""A small residual CNN: two residual blocks (He et al. 2016, basic block without BatchNorm).

stem conv 3x3 (8) -> ReLU -> pool -> block(8) -> conv 3x3 (16) -> ReLU -> pool -> block(16) -> pool -> fc
(three pools keep the fc layer small: on 28x28 it sees 16 x 3 x 3, so most weights are convolutions).
A block computes relu(x + conv2(relu(conv1(x)))): its output channel c is x's channel c plus
conv2's filter c, so conv2's filters are COUPLED with the layer that made x (the stem or the
transition conv). Removing channel c means zeroing filter c of both; `coupled_channels` lists
those layers for structured pruning (core/compression/units.py). No BatchNorm: shared models are
never put in train mode, and the app needs no running statistics.
"""
from __future__ import annotations

from torch import Tensor, nn

from models import register_model


class Residual(nn.Module):
    """relu(x + conv2(relu(conv1(x)))) with same-size 3x3 convolutions (no projection on the skip)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Registration order matters: Grad-CAM (core/explain/attribution.py) takes the module after
        # the last Conv2d, relu2 here, whose output is the block's rectified output.
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()  # after the add: separate modules, so each ReLU is called once per forward

    def forward(self, x: Tensor) -> Tensor:
        return self.relu2(x + self.conv2(self.relu1(self.conv1(x))))


class ResNetSmall(nn.Module):
    """Two stages of (conv, ReLU, pool, residual block), then one fully connected layer."""

    # Layers whose output channels are one channel of the residual stream (same index, same channel).
    coupled_channels = (("stem", "block1.conv2"), ("transition", "block2.conv2"))

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = 8) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        if height < 8 or width_px < 8:
            raise ValueError(f"resnet_small needs inputs of at least 8x8 pixels, got {height}x{width_px}")
        self.stem = nn.Conv2d(channels, width, kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.block1 = Residual(width)
        self.transition = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        self.relu_t = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.block2 = Residual(2 * width)
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width * (height // 8) * (width_px // 8), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu(self.stem(x)))
        x = self.block1(x)
        x = self.pool2(self.relu_t(self.transition(x)))
        return self.fc(self.flatten(self.pool3(self.block2(x))))


@register_model("resnet_small", "Small residual CNN: two residual blocks (skip connections), 8 and 16 channels")
def resnet_small(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return ResNetSmall(input_shape, num_classes)
