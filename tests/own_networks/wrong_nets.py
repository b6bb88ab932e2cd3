"""Networks of a user's own that cannot be trained as they are (tests/test_own_network.py)."""

from torch import nn


class SevenOutputs(nn.Linear):
    """Seven logits where the data set has ten classes."""

    def __init__(self) -> None:
        super().__init__(28 * 28, 7)

    def forward(self, images):
        return super().forward(images.flatten(1))


class OtherImages(nn.Linear):
    """Made for 10x10 images, not the data set's 28x28."""

    def __init__(self) -> None:
        super().__init__(10 * 10, 10)

    def forward(self, images):
        return super().forward(images.flatten(1))
