"""The MLP, LeNet-5 and ResNet families, each built from its YAML as the project builds it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn

from src.models.resnet import ResNet

MODEL_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"
FAMILIES = ["mlp", "lenet5", "resnet_small"]


def build(model: str, image_shape=(1, 28, 28), num_classes=10, **overrides) -> nn.Module:
    cfg = OmegaConf.load(MODEL_DIR / f"{model}.yaml")
    return instantiate(cfg, image_shape=image_shape, num_classes=num_classes, **overrides)


@pytest.mark.parametrize(
    ("model", "parameters"),
    [("mlp", 235_146), ("lenet5", 61_706), ("resnet_small", 77_754)],
)
def test_parameter_counts_match_the_yaml_comments(model, parameters):
    assert sum(p.numel() for p in build(model).parameters()) == parameters
    assert f"({parameters:,} parameters)" in (MODEL_DIR / f"{model}.yaml").read_text()


@pytest.mark.parametrize("model", FAMILIES)
def test_a_batch_of_digits_gives_ten_logits_each(model):
    assert build(model).eval()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("model", FAMILIES)
def test_other_image_sizes_and_class_counts_work(model):
    network = build(model, image_shape=(1, 32, 32), num_classes=26).eval()
    assert network(torch.zeros(3, 1, 32, 32)).shape == (3, 26)


def test_lenet5_has_the_named_layers_of_the_classic_network():
    names = [name for name, _ in build("lenet5").named_children()]
    assert names == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
        "fc1", "relu3", "fc2", "relu4", "fc3",
    ]  # fmt: skip


@pytest.mark.parametrize("stage", [0, 1])
def test_resnet_blocks_add_their_input(stage):
    network = build("resnet_small").eval()
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
        ("lenet5", {"image_shape": (1, 8, 8)}, "image_shape"),
        ("resnet_small", {"channels": [16, 0, 64]}, "channels"),
        ("resnet_small", {"channels": []}, "channels"),
        ("resnet_small", {"blocks": 0}, "blocks"),
    ],
)
def test_out_of_range_arguments_raise_value_error_naming_them(model, overrides, argument):
    # Called directly: hydra's instantiate would wrap the ValueError in an InstantiationException.
    settings = OmegaConf.to_container(OmegaConf.load(MODEL_DIR / f"{model}.yaml"))
    network_class = get_class(settings.pop("_target_"))
    arguments = {"image_shape": (1, 28, 28), "num_classes": 10, **settings, **overrides}
    with pytest.raises(ValueError, match=f"^{argument} "):
        network_class(**arguments)
