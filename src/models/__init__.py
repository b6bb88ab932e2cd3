"""Networks, one file per family. Each is an `nn.Module` class whose constructor takes its own
settings (written once, in its `conf/model/*.yaml`) and two arguments the data set fills in:
`image_shape` (channels, height, width) and `num_classes`.

Below: what the console summary, TensorBoard's layer table and the benchmark say of a network.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from src.core.errors import message_line

LAYER_COLUMNS = ["layer", "type", "output", "parameters", "multiply-adds"]


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def one_blank_image(network: nn.Module, image_shape: tuple[int, ...]) -> torch.Tensor:
    """The network's output for one blank image: in eval mode (no batch-norm update, no dropout
    draw) and without gradients; the network's mode is put back."""
    training = network.training
    device = next(network.parameters(), torch.empty(0)).device
    try:
        with torch.no_grad():
            return network.eval()(torch.zeros(1, *image_shape, device=device))
    finally:
        network.train(training)


def flattened_size(features: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Features per image after a network's convolutions and pooling, measured rather than
    written by hand, so that other image sizes work too."""
    try:
        return one_blank_image(features, image_shape).shape[1]
    except RuntimeError as error:  # the image shrank to nothing on the way
        raise ValueError(
            f"image_shape {tuple(image_shape)} is too small for these layers "
            f"({message_line(error)}): use larger images, or fewer layers that shrink them"
        ) from None


def count_one_image(network: nn.Module, image_shape: tuple[int, ...]) -> FlopCounterMode:
    """torch's FLOP counter after a forward pass of one blank image."""
    with FlopCounterMode(display=False) as counter:
        one_blank_image(network, image_shape)
    return counter


def multiply_adds(network: nn.Module, image_shape: tuple[int, ...]) -> int:
    """Multiply-adds per image: half the FLOPs of convolutions and matrix products."""
    return count_one_image(network, image_shape).get_total_flops() // 2


def layer_rows(network: nn.Module, image_shape: tuple[int, ...]) -> list[list[str]]:
    """The network's layers, one row each (LAYER_COLUMNS): name, type, output shape for one
    image, parameters and multiply-adds; then the totals."""
    layers = table_layers(network)
    with outputs_of(layers) as outputs:
        counter = count_one_image(network, image_shape)
    flops = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    prefix = type(network).__name__
    rows = [
        [
            name,
            type(layer).__name__,
            " x ".join(map(str, outputs[name].shape[1:])) if name in outputs else "",
            f"{count_parameters(layer):,}",
            f"{flops.get(f'{prefix}.{name}', 0) // 2:,}",
        ]
        for name, layer in layers.items()
    ]
    totals = [f"{count_parameters(network):,}", f"{counter.get_total_flops() // 2:,}"]
    return [*rows, ["total", "", "", *totals]]


def table_layers(network: nn.Module, prefix: str = "") -> dict[str, nn.Module]:
    """The layers a table lists, by their dotted names: the network's children, and in place of a
    child that only holds others (a Sequential, ModuleList or ModuleDict), its children."""
    layers: dict[str, nn.Module] = {}
    for name, child in network.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            layers |= table_layers(child, f"{prefix}{name}.")
        else:
            layers[f"{prefix}{name}"] = child
    return layers


@contextmanager
def outputs_of(layers: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Each layer's first output during the forward passes inside the block, by the layer's name,
    captured with forward hooks (a copy: an in-place ReLU may follow)."""
    outputs: dict[str, torch.Tensor] = {}

    def keeper(name: str):
        def keep(module: nn.Module, inputs, output: torch.Tensor) -> None:
            outputs.setdefault(name, output.detach().clone())

        return keep

    handles = [layer.register_forward_hook(keeper(name)) for name, layer in layers.items()]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
