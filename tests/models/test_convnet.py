"""ConvNet (the seed networks and vgg_small): its layers, padding, counts and checks."""

import pytest
import torch
from torch import nn

from src.models import count_parameters, layer_rows, multiply_adds
from src.models.convnet import ConvNet
from tests.conftest import compose_train
from tests.models.test_every_model import network_for


def test_single_conv_network_matches_the_notes_layer_by_layer():
    layers = dict(network_for("convnet_single").named_children())
    assert count_parameters(layers["conv1"]) == 144 + 16
    assert count_parameters(layers["fc"]) == 27_040 + 10


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_null_padding_keeps_the_image_size_for_any_odd_kernel(kernel_size):
    network = network_for("vgg_small", (1, 28, 28), 10, f"model.kernel_size={kernel_size}")
    convs = [layer for layer in network if isinstance(layer, nn.Conv2d)]
    assert {conv.padding for conv in convs} == {(kernel_size // 2, kernel_size // 2)}
    assert convs[0](torch.zeros(1, 1, 28, 28)).shape[-2:] == (28, 28)


def test_multiply_adds_are_counted_per_image_by_hand_for_the_single_conv_network():
    # conv: 16 filters x 3x3 weights x 26x26 outputs; fc: 2704 x 10
    assert multiply_adds(network_for("convnet_single"), (1, 28, 28)) == 16 * 9 * 26 * 26 + 27_040


def test_the_layer_rows_hold_every_layer_and_add_up_to_the_totals():
    network = network_for("convnet32")
    rows = layer_rows(network, (1, 28, 28))
    assert [row[0] for row in rows[:-1]] == [name for name, _ in network.named_children()]
    conv1 = rows[0]
    assert conv1[1:] == ["Conv2d", "32 x 28 x 28", "320", f"{32 * 9 * 28 * 28:,}"]
    assert rows[-1][3] == "421,642"
    total = sum(int(row[4].replace(",", "")) for row in rows[:-1])
    assert f"{total:,}" == rows[-1][4] == f"{multiply_adds(network, (1, 28, 28)):,}"


def settings(**changes):
    base = dict(compose_train().model)
    base.pop("_target_")
    return {**base, "image_shape": (1, 28, 28), "num_classes": 10, **changes}


def test_batch_norm_and_dropout_are_off_in_the_seed_networks_and_on_when_asked():
    plain = ConvNet(**settings())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in plain.modules())
    rich = ConvNet(**settings(batch_norm=True, dropout=0.25, convs_per_block=2))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in rich.modules()) == 4
    assert sum(isinstance(m, nn.Dropout) for m in rich.modules()) == 2
    assert all(m.training for m in rich.modules())


def test_images_too_small_for_the_blocks_are_named():
    with pytest.raises(ValueError, match=r"image_shape \(1, 28, 28\) is too small for these"):
        ConvNet(**settings(channels=[8, 8, 8, 8, 8, 8]))
