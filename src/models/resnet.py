"""A small residual network (He et al., 2016) in the style of torchvision's ResNet, sized for MNIST.

The seed notes name ResNet as a next step: skip connections and batch norm let a deeper stack of
3x3 convolutions train as easily as a shallow one, here with well under 100k parameters.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm whose result is added to the block's input."""

    def __init__(self, *, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        # No conv bias: the batch norm right after it has its own.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        # The input can only be added as is when the block keeps its shape; otherwise a 1x1 conv
        # projects it to the new channels and resolution.
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(
        self,
        *,
        channels: list[int],
        blocks: int,
        image_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        if len(channels) == 0 or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list, all >= 1, got {list(channels)}")
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(image_shape[0], channels[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_channels = channels[0]
        for index, out_channels in enumerate(channels):
            # Every stage after the first halves the resolution as it widens the channels, so
            # each block costs about the same.
            strides = [1 if index == 0 else 2] + [1] * (blocks - 1)
            stage = []
            for stride in strides:
                stage.append(
                    BasicBlock(in_channels=in_channels, out_channels=out_channels, stride=stride)
                )
                in_channels = out_channels
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        # Average pooling instead of a flatten makes the classifier independent of the image size.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))
