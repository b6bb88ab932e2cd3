"""Pictures of a classifier's results, drawn once for `src.eval`'s PNG files and every validation
epoch for TensorBoard (`src.visuals.pictures`).

Figures are plain matplotlib `Figure`s on the Agg canvas, never pyplot: no global state, no
display needed, nothing left open.
"""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor
from torchvision.utils import make_grid

LABEL_BAND = 10  # pixels above each digit of a grid, for its label


def confusion_figure(matrix: Tensor, classes: list[str]) -> Figure:
    """Counts of true class (rows) against predicted class (columns), each cell labelled."""
    counts = matrix.cpu().numpy()
    figure = Figure(figsize=(5.5, 5), dpi=100, layout="tight")
    axes = figure.subplots()
    axes.imshow(counts, cmap="Blues")
    darkest = counts.max() or 1
    for true, predicted in np.ndindex(counts.shape):
        count = counts[true, predicted]
        color = "white" if count > darkest / 2 else "black"
        axes.text(predicted, true, str(count), ha="center", va="center", fontsize=7, color=color)
    # Long class names (Fashion-MNIST's) slant under the columns rather than overlap.
    slant = 45 if max(map(len, classes)) > 2 else 0
    axes.set_xticks(range(len(classes)), classes, rotation=slant, ha="right" if slant else "center")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{counts.trace():,} of {counts.sum():,} right")
    return figure


def digits_figure(images: Tensor, predicted: Tensor, true: Tensor, classes: list[str]) -> Figure:
    """A grid of images, each under its predicted and true class (a note if none). One canvas in
    one axes: a subplot per image costs a quarter of a second per twenty images, every epoch."""
    columns = min(10, max(1, len(images)))
    rows = max(1, math.ceil(len(images) / columns))
    height, width = images.shape[-2:] if len(images) else (28, 28)
    cell_height, cell_width = height + LABEL_BAND, width + 2
    canvas = np.ones((rows * cell_height, columns * cell_width))  # white: the labels' bands
    figure = Figure(figsize=(max(columns * 0.9, 2.5), rows * 1.05), dpi=100, layout="tight")
    axes = figure.subplots()
    axes.axis("off")
    if not len(images):
        axes.text(0.5, 0.5, "nothing misclassified", ha="center", va="center")
        return figure
    for i, (image, guess, label) in enumerate(
        zip(images.detach().float().cpu(), predicted.tolist(), true.tolist(), strict=True)
    ):
        top, left = (i // columns) * cell_height, (i % columns) * cell_width
        pixels = image.squeeze(0).numpy()
        span = pixels.max() - pixels.min()
        canvas[top + LABEL_BAND : top + cell_height, left + 1 : left + 1 + width] = (
            (pixels - pixels.min()) / span if span else 0
        )
        axes.text(
            left + cell_width / 2,
            top + LABEL_BAND / 2,
            f"{classes[guess]} (true {classes[label]})",
            ha="center",
            va="center",
            fontsize=7,
            color="firebrick",
        )
    axes.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    return figure


def mistakes_by_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Indices of the misclassified images, the most confidently wrong first."""
    losses = F.cross_entropy(logits, labels, reduction="none")
    wrong = (logits.argmax(dim=1) != labels).nonzero().squeeze(1)
    return wrong[losses[wrong].argsort(descending=True)]


def figure_pixels(figure: Figure) -> np.ndarray:
    """The figure rendered as RGB pixels (height, width, 3), for TensorBoard."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def maps_grid(maps: Tensor, least_size: int = 28) -> Tensor:
    """Feature maps (images, channels, height, width) as one picture: a row per image, a column
    per channel, each map scaled to its own range and enlarged to `least_size` pixels or more
    (a deep layer's 7x7 maps would be specks in TensorBoard, which shows images at their size)."""
    images, channels = maps.shape[:2]
    tiles = maps.detach().float().cpu().reshape(images * channels, 1, *maps.shape[2:])
    zoom = max(1, least_size // min(tiles.shape[2:]))
    tiles = F.interpolate(tiles, scale_factor=zoom, mode="nearest")
    return make_grid(tiles, nrow=channels, padding=1, normalize=True, scale_each=True)


def filters_grid(weight: Tensor, zoom: int = 8) -> Tensor:
    """A convolution's filters (first input channel), enlarged so 3x3 kernels can be seen."""
    kernels = weight.detach().float().cpu()[:, :1]
    kernels = F.interpolate(kernels, scale_factor=zoom, mode="nearest")
    return make_grid(kernels, nrow=8, padding=2, normalize=True, scale_each=True, pad_value=1)
