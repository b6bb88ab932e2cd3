"""ONNX export: every network of conf/model/ exports and agrees with PyTorch; `python -m
src.export` writes model.onnx and model.json for a run and an ensemble and checks them; what
cannot be exported, or disagrees, is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from src.core.build import build
from src.core.classifier import Classifier
from src.core.config import CONF_DIR
from src.core.ensemble import Member, load_members
from src.core.errors import UsageError
from src.data.idx import load_split, raw_folder
from src.export import (
    ExportDisagrees,
    ProbabilityModel,
    agreement,
    as_unit_range,
    bench,
    format_bench,
    onnx_session,
    write_onnx,
)
from tests.conftest import compose_train, run_module

NETWORKS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "custom")


def untrained_member(model: str, seed: int = 0, **overrides: str) -> Member:
    """A network of conf/model/ as a checkpoint would rebuild it, with its initial weights."""
    torch.manual_seed(seed)
    cfg = compose_train(f"model={model}", *(f"{k}={v}" for k, v in overrides.items()))
    classes = list(cfg.data.classes)
    classifier = Classifier(cfg.model, cfg.optimizer, cfg.scheduler, cfg.data, (1, 28, 28), classes)
    return Member(Path(f"{model}.ckpt"), classifier.eval(), build("data", cfg.data, seed=0))


@pytest.mark.parametrize("model", NETWORKS)
def test_every_network_exports_and_agrees_with_pytorch(model, tiny_mnist, tmp_path):
    member = untrained_member(model, **{"data.data_dir": str(tiny_mnist)})
    write_onnx([member], tmp_path)
    images, _ = load_split(raw_folder(tiny_mnist, "MNIST"), "test")
    check = agreement([member], onnx_session(tmp_path / "model.onnx"), images)
    assert check.images == 100 and check.largest_difference < 1e-4


def test_export_writes_a_checked_model_of_any_batch_size(font_run, tmp_path):
    run_dir, data_dir = font_run
    result = run_module(
        "src.export",
        f"ckpt_path={run_dir}",
        f"data.data_dir={data_dir}",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"wrote model.onnx and model.json in {tmp_path}; onnxruntime and ")
    assert "same class for all 100 first test digits (largest difference of" in lines[0]
    description = json.loads((tmp_path / "model.json").read_text())
    assert description["classes"] == [str(digit) for digit in range(10)]
    assert description["input"]["shape"] == ["batch", 1, 28, 28]
    assert description["output"] == {
        "name": "probabilities",
        "shape": ["batch", 10],
        "dtype": "float32",
    }
    assert description["opset"] >= 18

    images, labels = load_split(raw_folder(data_dir, "MNIST"), "test")
    session = onnx_session(tmp_path / "model.onnx")
    for count in (1, 7, 100):  # the batch axis is not fixed
        (probabilities,) = session.run(None, {"images": as_unit_range(images[:count])})
        assert probabilities.shape == (count, 10)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (probabilities.argmax(axis=1) == labels.numpy()).mean() > 0.9


def test_an_ensemble_exports_as_one_model(font_run, tmp_path):
    run_dir, data_dir = font_run
    members = load_members([str(run_dir), str(run_dir)], {"data_dir": str(data_dir)})
    members[1] = untrained_member("lenet5", **{"data.data_dir": str(data_dir)})  # another network
    write_onnx(members, tmp_path)
    description = json.loads((tmp_path / "model.json").read_text())
    assert [m["network"] for m in description["members"]] == ["ConvNet", "LeNet5"]
    images, _ = load_split(raw_folder(data_dir, "MNIST"), "test")
    assert agreement(members, onnx_session(tmp_path / "model.onnx"), images).images == 100


class DecidesByItsInput(nn.Module):
    """Control flow on a value of the input: torch.export cannot trace it into one graph."""

    def __init__(self, image_shape, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.sum() > 0:
            return self.fc(images.flatten(1))
        return -self.fc(images.flatten(1))


def test_a_network_that_cannot_be_exported_is_named_with_the_reason(tmp_path):
    member = untrained_member("custom", **{"model._target_": f"{__name__}.DecidesByItsInput"})
    with pytest.raises(UsageError, match=r"^DecidesByItsInput cannot be exported to ONNX \("):
        write_onnx([member], tmp_path)


def test_an_export_that_disagrees_with_pytorch_is_refused(tiny_mnist, tmp_path):
    exported, other = untrained_member("mlp", seed=1), untrained_member("mlp", seed=2)
    write_onnx([exported], tmp_path)
    images, _ = load_split(raw_folder(tiny_mnist, "MNIST"), "test")
    with pytest.raises(ExportDisagrees, match=r"^model.onnx predicts another class than PyTorch"):
        agreement([other], onnx_session(tmp_path / "model.onnx"), images)


def test_bench_times_both_engines(font_run, tmp_path):
    run_dir, data_dir = font_run
    members = load_members(str(run_dir), {"data_dir": str(data_dir)})
    write_onnx(members, tmp_path)
    images, _ = load_split(raw_folder(data_dir, "MNIST"), "test")
    results = bench(ProbabilityModel(members), onnx_session(tmp_path / "model.onnx"), images, 1, 3)
    threads = torch.get_num_threads()
    assert list(results) == [
        f"PyTorch eager, {threads} threads",
        "PyTorch eager, 1 thread",
        "onnxruntime",
    ]
    for result in results.values():
        assert 0 < result["latency_median_ms"] <= result["latency_p99_ms"]
        assert result["images_per_second"] > 0
    table = format_bench(results).splitlines()
    assert table[2] == "| engine | one image, median | one image, p99 | batch 256, images/s |"
    assert [row.split(" | ")[0] for row in table[4:]] == [f"| {name}" for name in results]
