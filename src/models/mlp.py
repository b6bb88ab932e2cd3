"""Fully connected baseline: the image flattened into a stack of Linear -> ReLU layers.

It has no convolutions, so it shows how much the ConvNets, LeNet-5 and the ResNet gain from
looking at neighbouring pixels together rather than at each pixel on its own.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn


class MLP(nn.Sequential):
    def __init__(
        self,
        *,
        hidden: list[int],
        dropout: float,
        image_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        if any(width < 1 for width in hidden):
            raise ValueError(f"hidden widths must all be >= 1, got {list(hidden)}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: OrderedDict[str, nn.Module] = OrderedDict([("flatten", nn.Flatten())])
        in_features = math.prod(image_shape)
        for index, width in enumerate(hidden, start=1):
            layers[f"fc{index}"] = nn.Linear(in_features, width)
            layers[f"relu{index}"] = nn.ReLU(inplace=True)
            # No Dropout module at all when off, so the printed network shows only what runs.
            if dropout > 0:
                layers[f"dropout{index}"] = nn.Dropout(dropout)
            in_features = width
        layers[f"fc{len(hidden) + 1}"] = nn.Linear(in_features, num_classes)
        super().__init__(layers)
