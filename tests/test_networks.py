import pytest
import torch
from torch import nn

from src.config import CONF_DIR
from src.networks import build_convnet, count_parameters
from tests.conftest import compose_train

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def network_for(model: str) -> nn.Sequential:
    cfg = compose_train(f"model={model}")
    return build_convnet(**{k: v for k, v in cfg.model.items() if k != "name"})


@pytest.mark.parametrize(
    ("model", "parameters"),
    [("convnet32", 421_642), ("convnet16", 206_922), ("convnet_single", 27_210)],
)
def test_seed_networks_have_the_seed_notes_parameter_counts(model, parameters):
    assert count_parameters(network_for(model)) == parameters


def test_single_conv_network_matches_the_notes_layer_by_layer():
    layers = dict(network_for("convnet_single").named_children())
    assert count_parameters(layers["conv1"]) == 144 + 16
    assert count_parameters(layers["fc"]) == 27_040 + 10


@pytest.mark.parametrize("model", MODELS)
def test_every_model_maps_a_batch_of_digits_to_ten_logits(model):
    assert network_for(model)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_batch_norm_and_dropout_are_off_by_default_and_on_when_asked():
    plain = build_convnet()
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in plain.modules())
    rich = build_convnet(batch_norm=True, dropout=0.25, convs_per_block=2)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in rich.modules()) == 4
    assert sum(isinstance(m, nn.Dropout) for m in rich.modules()) == 2
    assert all(m.training for m in rich.modules())
