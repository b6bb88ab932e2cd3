"""Every network in conf/model, built through its config as the project builds it: a new YAML is
tested here without a line of its own (its parameter count once it is written below)."""

import pytest
import torch
from torch import nn

from src.core.classifier import build_network
from src.core.config import CONF_DIR
from src.models import count_parameters, layer_rows
from tests.conftest import compose_train

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "custom")
PARAMETERS = {
    "convnet_single": 27_210,
    "convnet16": 206_922,
    "convnet32": 421_642,
    "convnet64": 1_682_954,
    "vgg_small": 584_618,
    "lenet5": 61_706,
    "mlp": 235_146,
    "resnet_small": 77_754,
}


def network_for(model: str, image_shape=(1, 28, 28), classes: int = 10, *overrides) -> nn.Module:
    return build_network(compose_train(f"model={model}", *overrides).model, image_shape, classes)


@pytest.mark.parametrize(("model", "parameters"), PARAMETERS.items())
def test_every_network_has_the_parameter_count_its_yaml_says(model, parameters):
    assert count_parameters(network_for(model)) == parameters
    assert f"{parameters:,} parameters)" in (CONF_DIR / "model" / f"{model}.yaml").read_text()


@pytest.mark.parametrize("model", MODELS)
def test_every_model_maps_a_batch_of_images_to_one_logit_per_class(model):
    assert network_for(model).eval()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_takes_other_image_sizes_and_class_counts(model):
    network = network_for(model, (1, 32, 32), 26).eval()
    assert network(torch.zeros(2, 1, 32, 32)).shape == (2, 26)


@pytest.mark.parametrize("model", MODELS)
def test_every_models_layer_table_shows_each_layer_and_adds_up_to_its_totals(model):
    *rows, total = layer_rows(network_for(model), (1, 28, 28))
    assert all(row[2] for row in rows), "a layer without an output shape was never called"
    for column in (3, 4):  # parameters, multiply-adds
        assert sum(int(row[column].replace(",", "")) for row in rows) == int(
            total[column].replace(",", "")
        )
