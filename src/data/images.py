"""A user's image of one thing -> a 28x28 image made the way its data set made its own.

MNIST digits (and KMNIST's characters) are white ink on black, scaled (keeping their aspect ratio)
to fit a 20x20 box and centred by their centre of mass in a 28x28 image. Fashion-MNIST's clothes
are light on black too, but scaled so the longer side fills all 28 pixels and centred by their
bounding box. A photo or scan is rarely like either: dark on light paper, anywhere, at any size.
A network only sees it right once it is made the same way (`data.predict_box` and
`data.predict_centre` say which way, per data set).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

MNIST_SIZE = 28
INK = 0.2  # a pixel at least this bright (0..1, after the background is taken away) is ink


class UnusableImage(ValueError):
    """An input src.predict cannot answer for (no such file, not an image, no digit in it); the
    message says why, and the other inputs go on."""


def read_image(source: str | Path | BinaryIO) -> Image.Image:
    """The image (a file, or a file-like object: an upload) in grayscale, upright as its camera
    took it, transparency over white."""
    with Image.open(source) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            white = Image.new("RGBA", image.size, "white")
            image = Image.alpha_composite(white, image.convert("RGBA"))
        return image.convert("L")


def as_is(image: Image.Image) -> Tensor:
    """An image that is already MNIST-like (28x28, white on black), as uint8 (1, 28, 28)."""
    if image.size != (MNIST_SIZE, MNIST_SIZE):
        width, height = image.size
        raise UnusableImage(
            f"{width}x{height} pixels, not {MNIST_SIZE}x{MNIST_SIZE}: preprocess=false takes "
            "MNIST-like images only; leave preprocess on for photos and scans"
        )
    return torch.from_numpy(np.array(image, dtype=np.uint8)).unsqueeze(0)


def like_dataset(image: Image.Image, box: int, centre: str) -> Tensor:
    """Grayscale image of one thing -> uint8 (1, 28, 28): inverted when its background is light,
    cropped to the ink, scaled into a box x box square, centred by its centre of mass
    (centre='mass') or its bounding box (centre='box')."""
    pixels = torch.from_numpy(np.array(image, dtype=np.float32) / 255)
    background = border(pixels).median()
    if background > 0.5:  # dark ink on light paper: MNIST is light ink on black
        pixels, background = 1 - pixels, 1 - background
    ink = (pixels - background).clamp(min=0)
    if ink.max() <= 0:
        raise UnusableImage("no digit found: the image is one flat colour")
    digit = crop_to_ink(ink / ink.max())
    place = centre_by_mass if centre == "mass" else centre_by_box
    return place(scale_into_box(digit, box)).mul(255).round().to(torch.uint8).unsqueeze(0)


def border(pixels: Tensor) -> Tensor:
    """The outermost pixels, which show the background of an image of one digit."""
    return torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


def crop_to_ink(ink: Tensor) -> Tensor:
    rows, columns = (ink >= INK).nonzero(as_tuple=True)
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def scale_into_box(digit: Tensor, box: int) -> Tensor:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio (antialiased)."""
    height, width = digit.shape
    factor = box / max(height, width)
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    scaled = F.interpolate(digit[None, None], size=size, mode="bilinear", antialias=True)
    return scaled[0, 0].clamp(0, 1)


def centre_by_mass(digit: Tensor) -> Tensor:
    """Place the digit in a 28x28 black image so its centre of mass lies at the centre."""
    height, width = digit.shape
    rows, columns = torch.arange(height), torch.arange(width)
    mass = digit.sum()
    centre_row = (digit.sum(dim=1) * rows).sum() / mass
    centre_column = (digit.sum(dim=0) * columns).sum() / mass
    middle = (MNIST_SIZE - 1) / 2
    top = min(max(round(float(middle - centre_row)), 0), MNIST_SIZE - height)
    left = min(max(round(float(middle - centre_column)), 0), MNIST_SIZE - width)
    canvas = torch.zeros(MNIST_SIZE, MNIST_SIZE)
    canvas[top : top + height, left : left + width] = digit
    return canvas


def centre_by_box(thing: Tensor) -> Tensor:
    """Place the image in a 28x28 black image with its bounding box in the middle."""
    height, width = thing.shape
    top, left = (MNIST_SIZE - height) // 2, (MNIST_SIZE - width) // 2
    canvas = torch.zeros(MNIST_SIZE, MNIST_SIZE)
    canvas[top : top + height, left : left + width] = thing
    return canvas
