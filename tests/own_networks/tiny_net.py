"""A network of a user's own, outside src/, trained from the command line alone
(tests/test_own_network.py)."""

from torch import nn


class TinyNet(nn.Sequential):
    """One convolution and a classifier; `width` is its own argument, the rest comes from the
    data set."""

    def __init__(self, width: int, image_shape: tuple[int, int, int], num_classes: int) -> None:
        channels, height, breadth = image_shape
        super().__init__(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(width * height * breadth, num_classes),
        )
