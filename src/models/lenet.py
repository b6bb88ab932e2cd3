"""LeNet-5 (LeCun et al., 1998) as usually adapted to 28x28 digits, with ReLU and max pooling.

The seed notes name it as a next step: the classic small ConvNet for handwritten digits, and a
reference point of about 62k parameters next to the project's wider ConvNets.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class LeNet5(nn.Sequential):
    def __init__(self, *, image_shape: tuple[int, int, int], num_classes: int) -> None:
        # conv1 keeps the size, pool1 halves it, conv2 takes 4 off, pool2 halves it again.
        if min(image_shape[1:]) < 10:
            raise ValueError(f"image_shape height and width must be >= 10, got {image_shape}")
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            [
                # padding 2 makes a 28x28 digit look like the 32x32 input of the original paper
                ("conv1", nn.Conv2d(image_shape[0], 6, 5, padding=2)),
                ("relu1", nn.ReLU(inplace=True)),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(6, 16, 5)),
                ("relu2", nn.ReLU(inplace=True)),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
            ]
        )
        # Measured rather than written as 16 * 5 * 5, so other image sizes work too.
        with torch.no_grad():
            features = nn.Sequential(layers)(torch.zeros(1, *image_shape)).shape[1]
        layers["fc1"] = nn.Linear(features, 120)
        layers["relu3"] = nn.ReLU(inplace=True)
        layers["fc2"] = nn.Linear(120, 84)
        layers["relu4"] = nn.ReLU(inplace=True)
        layers["fc3"] = nn.Linear(84, num_classes)
        super().__init__(layers)
