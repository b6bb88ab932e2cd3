"""The seed notes' ConvNet and its variants, one configurable class:

    blocks of [Conv -> (BatchNorm) -> ReLU] x convs_per_block -> MaxPool(2)
    -> flatten -> (Dropout) -> Linear(hidden) -> ReLU -> (Dropout) -> Linear(classes)

With hidden=null the flattened features go straight into the classifier (the seed notes'
single-convolution network). Two 3x3 convolutions per block with batch norm make a small VGG.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from src.models import flattened_size


class ConvNet(nn.Sequential):
    def __init__(
        self,
        *,
        channels: list[int],
        convs_per_block: int,
        kernel_size: int,
        padding: int | None,
        hidden: int | None,
        batch_norm: bool,
        dropout: float,
        image_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        check_settings(channels, convs_per_block, kernel_size, padding, hidden, dropout)
        if padding is None:  # half the kernel keeps the image size, whatever the kernel (odd)
            padding = kernel_size // 2
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = image_shape[0]
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
        features = flattened_size(nn.Sequential(layers), image_shape)
        if dropout:
            layers["dropout1"] = nn.Dropout(dropout)
        if hidden is None:
            layers["fc"] = nn.Linear(features, num_classes)
        else:
            layers["fc1"] = nn.Linear(features, hidden)
            layers["relu_fc"] = nn.ReLU(inplace=True)
            if dropout:
                layers["dropout2"] = nn.Dropout(dropout)
            layers["fc2"] = nn.Linear(hidden, num_classes)
        super().__init__(layers)


def check_settings(
    channels: list[int],
    convs_per_block: int,
    kernel_size: int,
    padding: int | None,
    hidden: int | None,
    dropout: float,
) -> None:
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be one or more widths, all >= 1, got {channels}")
    if convs_per_block < 1:
        raise ValueError(f"convs_per_block must be >= 1, got {convs_per_block}")
    if kernel_size < 1 or (padding is not None and padding < 0):
        raise ValueError(
            f"kernel_size must be >= 1 and padding >= 0 or null, got {kernel_size}, {padding}"
        )
    if hidden is not None and hidden < 1:
        raise ValueError(f"hidden must be >= 1 or null, got {hidden}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
