"""One configurable ConvNet builder for every network of the seed notes and beyond.

    blocks of [Conv -> (BatchNorm) -> ReLU] x convs_per_block -> MaxPool(2)
    -> flatten -> (Dropout) -> Linear(hidden) -> ReLU -> (Dropout) -> Linear(10)

With hidden=None the flattened features go straight into the 10-way classifier (the seed notes'
single-convolution network). Batch norm and dropout default to off so the seed networks stay exact.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


def build_convnet(
    channels: Sequence[int] = (32, 64),
    convs_per_block: int = 1,
    kernel_size: int = 3,
    padding: int = 1,
    hidden: int | None = 128,
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = IMAGE_SHAPE[0]
    for block, out_channels in enumerate(channels, start=1):
        for conv in range(1, convs_per_block + 1):
            suffix = f"{block}" if convs_per_block == 1 else f"{block}_{conv}"
            layers[f"conv{suffix}"] = nn.Conv2d(
                in_channels, out_channels, kernel_size, padding=padding, bias=not batch_norm
            )
            if batch_norm:
                layers[f"bn{suffix}"] = nn.BatchNorm2d(out_channels)
            layers[f"relu{suffix}"] = nn.ReLU(inplace=True)
            in_channels = out_channels
        layers[f"pool{block}"] = nn.MaxPool2d(2)
    layers["flatten"] = nn.Flatten()
    features = flattened_size(nn.Sequential(layers))
    if dropout:
        layers["dropout1"] = nn.Dropout(dropout)
    if hidden is None:
        layers["fc"] = nn.Linear(features, NUM_CLASSES)
    else:
        layers["fc1"] = nn.Linear(features, hidden)
        layers["relu_fc"] = nn.ReLU(inplace=True)
        if dropout:
            layers["dropout2"] = nn.Dropout(dropout)
        layers["fc2"] = nn.Linear(hidden, NUM_CLASSES)
    return nn.Sequential(layers)


def flattened_size(features: nn.Module) -> int:
    """Features per image after the conv blocks, found by running one blank image through."""
    with torch.no_grad():
        size = features.eval()(torch.zeros(1, *IMAGE_SHAPE)).shape[1]
    features.train()
    return size


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())
