"""A user's own network, defined under tests/ (nothing in src/ or conf/ changed for it), trained,
evaluated and predicted with from the command line alone, its argument an override."""

import json

import pytest
from PIL import Image

from src.data.idx import load_split, raw_folder
from tests.conftest import TINY, evaluate, run_module

OWN = ["model=custom", "model._target_=tests.own_networks.tiny_net.TinyNet", "+model.width=4"]


def test_a_network_of_the_users_own_trains_evaluates_and_predicts(tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    result = run_module(
        "src.train", f"data.data_dir={tiny_mnist}", *TINY, *OWN, "logger=none",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "network tests.own_networks.tiny_net.TinyNet" in result.stderr + result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs"] == 2

    _, report = evaluate(run_dir, tiny_mnist, tmp_path / "eval")
    assert abs(report["test/acc"] - metrics["test/acc"]) < 1e-6

    images, _ = load_split(raw_folder(tiny_mnist, "MNIST"), "test")
    Image.fromarray(images[0, 0].numpy()).save(tmp_path / "one.png")
    predicted = run_module(
        "src.predict", f"ckpt_path={run_dir}", f"inputs={tmp_path / 'one.png'}",
        "preprocess=false", "json=true",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert json.loads(predicted.stdout)["class"] in [str(i) for i in range(10)]


def test_a_missing_argument_of_the_users_network_is_named(tiny_mnist, tmp_path):
    result = run_module(
        "src.train", f"data.data_dir={tiny_mnist}", *TINY, *OWN[:2],
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model.width is missing: tests.own_networks.tiny_net.TinyNet needs it "
        "(+model.width=... on the command line adds it)"
    )


@pytest.mark.parametrize(
    ("network", "message"),
    [
        (
            "SevenOutputs",
            "returns a tensor of shape (1, 7) for one 1x28x28 image: its forward must return "
            "logits of shape (batch, 10), one per class",
        ),
        (
            "OtherImages",
            "fails on one 1x28x28 image (RuntimeError: mat1 and mat2 shapes cannot be multiplied "
            "(1x784 and 100x10)): its forward must take a batch of the data set's images",
        ),
    ],
)
def test_a_network_that_does_not_fit_the_data_set_is_named_before_training(
    network, message, tiny_mnist, tmp_path
):
    result = run_module(
        "src.train", f"data.data_dir={tiny_mnist}", *TINY, "model=custom",
        f"model._target_=tests.own_networks.wrong_nets.{network}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: model (tests.own_networks.wrong_nets.{network}) {message}"
    )
    assert not (tmp_path / "run" / "tensorboard").exists()
