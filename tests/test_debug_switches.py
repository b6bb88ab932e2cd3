"""Lightning's debug switches, set on the command line as `trainer.<switch>=...`, each checked
by its effect on a run of `python -m src.train`."""

import csv
import json
import re

import pytest
import torch

from tests.conftest import TINY, run_module, write_mnist


def train(data_dir, run_dir, *settings):
    result = run_module(
        "src.train", f"data.data_dir={data_dir}", *TINY, *settings, f"hydra.run.dir={run_dir}"
    )
    return result, result.stdout + result.stderr


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_fast_dev_run_runs_n_batches_of_each_stage_and_tests_the_weights_in_memory(
    tiny_mnist, tmp_path
):
    result, console = train(
        tiny_mnist, tmp_path, "trainer.fast_dev_run=2", "data.eval_batch_size=20"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = metrics(tmp_path)
    assert (record["epochs"], record["steps"]) == (1, 2)
    assert record["val/images"] == record["test/images"] == 2 * 20
    assert record["test/acc"] == record["test/correct"] / 40
    assert "no best checkpoint (fast_dev_run keeps none): testing the weights in memory" in console
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert not (tmp_path / "tensorboard").exists()  # fast_dev_run logs nothing


def test_no_validation_tests_the_weights_in_memory(tiny_mnist, tmp_path):
    result, console = train(
        tiny_mnist, tmp_path, "trainer.max_epochs=1", "trainer.limit_val_batches=0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = metrics(tmp_path)
    assert record["val/acc_best"] is None and record["test/images"] == 100
    assert "no best checkpoint (no validation ran): testing the weights in memory" in console
    assert "best val acc - |" in console


def noise_with_random_labels(count, seed):
    """Nothing to learn: a network gets the labels right only by memorising the images."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 28, 28), generator=generator, dtype=torch.uint8)
    return images, torch.randint(0, 10, (count,), generator=generator, dtype=torch.uint8)


def test_overfit_batches_trains_on_the_same_batches_every_epoch(tmp_path):
    data_dir = write_mnist(tmp_path / "data", make=noise_with_random_labels)
    run_dir = tmp_path / "run"
    result, _ = train(
        data_dir, run_dir, "trainer.overfit_batches=1", "trainer.max_epochs=8", "model=mlp",
        "logger=csv",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(run_dir)["steps"] == 8  # one batch an epoch
    with open(run_dir / "csv" / "metrics.csv") as file:
        epochs = [row for row in csv.DictReader(file) if row["train/acc_epoch"]]
    accuracies = [float(row["train/acc_epoch"]) for row in epochs]
    # Random labels are learnt only by seeing the same images again: all right within a few
    # epochs. (Fresh batches each epoch stay far from that, as shuffling did before.)
    assert len(accuracies) == 8 and accuracies[0] < 0.5 and accuracies[-4:] == [1.0] * 4


def test_debug_overfit_shows_its_batches_learnt_on_the_epoch_lines(tmp_path):
    data_dir = write_mnist(tmp_path / "data", train_count=1000, make=noise_with_random_labels)
    settings = ["debug=overfit", "trainer.max_epochs=30", "model=mlp", "logger=none"]  # 30: its own
    result, console = train(data_dir, tmp_path / "run", *settings)
    assert result.returncode == 0, result.stderr[-3000:]
    train_acc = [
        float(a) for a in re.findall(r"^epoch \d+/30 \| .*train/acc ([\d.]+)%", console, re.M)
    ]
    # Random labels: only seeing the same 10 batches again learns them.
    assert len(train_acc) == 30 and train_acc[0] < 50 and train_acc[-1] == 100.0


@pytest.mark.parametrize("profiler", ["simple", "advanced", "pytorch"])
def test_the_profiler_writes_its_reports_into_the_run_folder(profiler, tiny_mnist, tmp_path):
    result, console = train(
        tiny_mnist, tmp_path, f"trainer.profiler={profiler}", "trainer.max_epochs=1",
        "trainer.limit_train_batches=3", "model=mlp", "logger=none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("fit", "test"):
        report = (tmp_path / f"{stage}-profile.txt").read_text()
        assert report.startswith(f"{stage.upper()} Profiler Report") and len(report) > 1000
    assert f"{profiler} profiler's reports in {tmp_path}: fit-profile" in console


def test_detect_anomaly_names_the_operation_that_made_the_first_nan(tiny_mnist, tmp_path):
    # An absurd learning rate: the weights overflow after the first step, the loss becomes NaN.
    # (The run's own check, at the logging interval, would stop it with one line: not before
    # step 50 here.)
    result, console = train(
        tiny_mnist, tmp_path, "trainer.detect_anomaly=true", "model=mlp", "optimizer=sgd",
        "optimizer.lr=1e30", "trainer.max_epochs=1", "logger=none", "trainer.log_every_n_steps=50",
    )  # fmt: skip
    assert result.returncode == 1
    assert re.search(r"Function '\w+Backward\d*' returned nan values", console), console[-3000:]
    assert "Traceback of forward call that caused the error" in console
