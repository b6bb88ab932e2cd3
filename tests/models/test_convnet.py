import pytest
import torch
from torch import nn

from src.core.classifier import build_network
from src.core.config import CONF_DIR
from src.models import count_parameters, layer_rows, multiply_adds
from src.models.convnet import ConvNet
from tests.conftest import compose_train

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "custom")


def network_for(model: str, image_shape=(1, 28, 28), classes: int = 10) -> nn.Module:
    return build_network(compose_train(f"model={model}").model, image_shape, classes)


@pytest.mark.parametrize(
    ("model", "parameters"),
    [
        ("convnet32", 421_642),
        ("convnet16", 206_922),
        ("convnet_single", 27_210),
        ("lenet5", 61_706),
        ("convnet64", 1_682_954),
        ("vgg_small", 584_618),
        ("mlp", 235_146),
        ("resnet_small", 77_754),
    ],
)
def test_every_network_has_its_parameter_count(model, parameters):
    assert count_parameters(network_for(model)) == parameters


def test_single_conv_network_matches_the_notes_layer_by_layer():
    layers = dict(network_for("convnet_single").named_children())
    assert count_parameters(layers["conv1"]) == 144 + 16
    assert count_parameters(layers["fc"]) == 27_040 + 10


@pytest.mark.parametrize("model", MODELS)
def test_every_model_maps_a_batch_of_images_to_one_logit_per_class(model):
    assert network_for(model)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert network_for(model, (1, 28, 28), 26)(torch.zeros(2, 1, 28, 28)).shape == (2, 26)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_null_padding_keeps_the_image_size_for_any_odd_kernel(kernel_size):
    network = build_network(
        compose_train("model=vgg_small", f"model.kernel_size={kernel_size}").model, (1, 28, 28), 10
    )
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
    with pytest.raises(ValueError, match="too small for these blocks"):
        ConvNet(**settings(channels=[8, 8, 8, 8, 8, 8]))
