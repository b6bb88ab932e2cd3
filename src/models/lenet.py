"""LeNet-5 (LeCun et al., 1998) as usually adapted to 28x28 digits, with ReLU and max pooling.

The seed notes name it as a next step: the classic small ConvNet for handwritten digits, and a
reference point of about 62k parameters next to the project's wider ConvNets.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from src.models import flattened_size


class LeNet5(nn.Sequential):
    def __init__(self, *, image_shape: tuple[int, int, int], num_classes: int) -> None:
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
        layers["fc1"] = nn.Linear(flattened_size(nn.Sequential(layers), image_shape), 120)  # 16*5*5
        layers["relu3"] = nn.ReLU(inplace=True)
        layers["fc2"] = nn.Linear(120, 84)
        layers["relu4"] = nn.ReLU(inplace=True)
        layers["fc3"] = nn.Linear(84, num_classes)
        super().__init__(layers)
