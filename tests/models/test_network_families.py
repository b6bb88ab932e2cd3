"""What the MLP, LeNet-5 and ResNet families must do beyond every model's checks
(tests/models/test_every_model.py), each built from its YAML as the project builds it."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import get_class
from torch import nn

from src.models import layer_rows
from src.models.resnet import ResNet
from tests.conftest import compose_train
from tests.models.test_every_model import network_for


def test_lenet5_has_the_named_layers_of_the_classic_network():
    names = [name for name, _ in network_for("lenet5").named_children()]
    assert names == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
        "fc1", "relu3", "fc2", "relu4", "fc3",
    ]  # fmt: skip


@pytest.mark.parametrize("stage", [0, 1])
def test_resnet_blocks_add_their_input(stage):
    network = network_for("resnet_small").eval()
    assert isinstance(network, ResNet)
    block = network.stages[stage][0]
    # With the residual branch silenced, only the skip connection is left to carry the signal.
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        expected = torch.relu(block.shortcut(x))
        assert expected.abs().sum() > 0
        torch.testing.assert_close(block(x), expected)
    # The first stage keeps the shape, so its skip is the input itself; later ones project it.
    assert isinstance(block.shortcut, nn.Identity) == (stage == 0)


@pytest.mark.parametrize(
    ("model", "overrides", "argument"),
    [
        ("mlp", {"dropout": 1.0}, "dropout"),
        ("mlp", {"dropout": -0.1}, "dropout"),
        ("mlp", {"hidden": [256, 0]}, "hidden"),
        ("lenet5", {"image_shape": (1, 10, 10)}, "image_shape"),  # pool2 would get 1x1
        ("resnet_small", {"channels": [16, 0, 64]}, "channels"),
        ("resnet_small", {"channels": []}, "channels"),
        ("resnet_small", {"blocks": 0}, "blocks"),
    ],
)
def test_out_of_range_arguments_raise_value_error_naming_them(model, overrides, argument):
    # Called directly: hydra's instantiate would wrap the ValueError in an InstantiationException.
    settings = dict(compose_train(f"model={model}").model)
    network_class = get_class(settings.pop("_target_"))
    arguments = {"image_shape": (1, 28, 28), "num_classes": 10, **settings, **overrides}
    with pytest.raises(ValueError, match=f"^{argument} "):
        network_class(**arguments)


def test_the_resnets_layer_table_opens_its_containers_down_to_the_blocks():
    rows = layer_rows(network_for("resnet_small"), (1, 28, 28))
    assert [row[:3] for row in rows[:6]] == [
        ["stem.0", "Conv2d", "16 x 28 x 28"],
        ["stem.1", "BatchNorm2d", "16 x 28 x 28"],
        ["stem.2", "ReLU", "16 x 28 x 28"],
        ["stages.0.0", "BasicBlock", "16 x 28 x 28"],
        ["stages.1.0", "BasicBlock", "32 x 14 x 14"],
        ["stages.2.0", "BasicBlock", "64 x 7 x 7"],
    ]
