import json
import os

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from src.core.hparams import TensorBoardRun
from src.train import train
from tests.conftest import ROOT, TINY, run_module

SCALARS = {
    "train/loss",
    "train/acc",
    "train/loss_epoch",
    "train/acc_epoch",
    "val/loss",
    "val/acc",
    "val/acc_best",
    "test/loss",
    "test/acc",
    "train/lr",
}


def read_events(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def hparams_plugin_data(events, part):
    """The run's HPARAMS `experiment` (its columns) or `session_start_info` (its values)."""
    content = events.SummaryMetadata(f"_hparams_/{part}").plugin_data.content
    return getattr(HParamsPluginData.FromString(content), part)


def event_folder(run_dir):
    (folder,) = (run_dir / "tensorboard").iterdir()
    return folder


def test_a_run_fits_tests_the_best_checkpoint_and_writes_everything(tiny_cfg, tmp_path):
    metrics = train(
        tiny_cfg(), tmp_path, ["trainer.max_epochs=2"], TensorBoardRun("trainer.max_epochs=2")
    )

    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert set(record) >= {"test/acc", "test/loss", "val/acc_best", "epochs", "fit_seconds"}
    assert record["overrides"] == ["trainer.max_epochs=2"] and record["epochs"] == 2
    assert record["test/acc"] == metrics["test/acc"] > 0.5  # the tiny digits are learnable
    # Accuracies are exact fractions of the counts beside them: 100 test and 100 val images.
    assert record["test/images"] == record["val/images"] == 100
    assert record["test/acc"] == record["test/correct"] / 100
    assert record["val/acc_best"] == record["val/correct_best"] / 100

    folder = event_folder(tmp_path)
    assert folder.name == "trainer.max_epochs=2"
    scalars = set(read_events(folder).Tags()["scalars"])
    assert scalars >= SCALARS, SCALARS - scalars
    assert "epoch" not in scalars  # Lightning's own, which would open TensorBoard's first screen


def test_a_single_runs_tensorboard_name_is_what_its_command_line_changes(tiny_mnist, tmp_path):
    result = run_module(
        "src.train", f"data.data_dir={tiny_mnist}", *TINY, "experiment=fast",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert event_folder(tmp_path).name == (
        "data.batch_size=32,data.eval_batch_size=50,data.val_size=100,experiment=fast,"
        "trainer.log_every_n_steps=1,trainer.max_epochs=2"  # not progress_bar_refresh, data_dir
    )


def test_hyperparameters_and_final_metrics_reach_the_hparams_tab(tiny_cfg, tmp_path):
    train(tiny_cfg("trainer.max_epochs=1"), tmp_path)
    experiment = hparams_plugin_data(read_events(event_folder(tmp_path)), "experiment")
    assert [m.name.tag for m in experiment.metric_infos] == [
        "test/acc",
        "val/acc_best",
        "test/loss",
    ]
    shown = {h.display_name for h in experiment.hparam_infos}
    assert {"model.channels", "optimizer.lr", "data.batch_size"} <= shown
    assert not {"data.data_dir", "trainer.log_every_n_steps", "callbacks.pictures.graph"} & shown


def test_two_loggers_write_side_by_side_and_no_logger_writes_none(tiny_cfg, tmp_path):
    train(tiny_cfg("logger=[tensorboard,csv]", "trainer.max_epochs=1"), tmp_path / "both")
    csv = (tmp_path / "both" / "csv" / "metrics.csv").read_text().splitlines()
    assert {"val/acc", "test/acc"} <= set(csv[0].split(","))
    events = read_events(event_folder(tmp_path / "both"))  # with the project's pictures, HPARAMS
    assert {"val/acc", "test/acc"} <= set(events.Tags()["scalars"])
    assert "val/confusion_matrix" in events.Tags()["images"]
    assert hparams_plugin_data(events, "experiment").hparam_infos
    assert "model.channels" in (tmp_path / "both" / "csv" / "hparams.yaml").read_text()

    train(tiny_cfg("logger=none", "trainer.max_epochs=1"), tmp_path / "none")
    assert not (tmp_path / "none" / "tensorboard").exists()
    assert (tmp_path / "none" / "metrics.json").is_file()


def test_same_seed_and_config_give_identical_metrics(tiny_cfg, tmp_path):
    first = train(tiny_cfg("logger=none"), tmp_path / "a")
    second = train(tiny_cfg("logger=none"), tmp_path / "b")
    assert first["test/acc"] == second["test/acc"]
    assert first["test/loss"] == second["test/loss"]  # a float: any difference in training shows
    assert first["val/acc_best"] == second["val/acc_best"]
    weights = [
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for run in (tmp_path / "a", tmp_path / "b")
    ]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    third = train(tiny_cfg("logger=none", "seed=7"), tmp_path / "c")
    assert third["test/loss"] != first["test/loss"]  # the comparison can tell runs apart


def test_multirun_writes_one_folder_with_metrics_per_job(tiny_mnist, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_module(
        "src.train",
        "-m",
        "model=convnet16,convnet_single",
        f"data.data_dir={tiny_mnist}",
        *TINY,
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        record = json.loads((sweep_dir / job / "metrics.json").read_text())
        assert record["test/acc"] > 0
        assert (sweep_dir / job / ".hydra" / "config.yaml").is_file()
        assert (sweep_dir / job / "train.log").is_file()
    assert "test acc" in result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("DATA_DIR"), reason="DATA_DIR is not set")
def test_one_epoch_on_real_mnist_reaches_98_percent(tmp_path):
    result = run_module(
        "src.train",
        "trainer.max_epochs=1",
        "callbacks.progress_bar_refresh=0",
        f"hydra.run.dir={tmp_path}",
        env={"DATA_DIR": str(ROOT / os.environ["DATA_DIR"])},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["test/acc"] >= 0.98


def test_per_step_training_scalars_are_written_every_log_every_n_steps(tiny_cfg, tmp_path):
    # 300 training images / batch 32 = 10 steps an epoch, 2 epochs, a value every 4th step
    train(tiny_cfg("trainer.log_every_n_steps=4"), tmp_path)
    events = read_events(event_folder(tmp_path))
    assert [e.step for e in events.Scalars("train/loss")] == [3, 7, 11, 15, 19]
    assert len(events.Scalars("train/acc_epoch")) == 2


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, "32-true"), (True, False, "bf16-mixed"), (False, True, "bf16-mixed")],
)
def test_precision_auto_takes_bf16_only_where_the_cpu_has_it_natively(
    tiny_cfg, tmp_path, monkeypatch, avx512_bf16, amx, expected
):
    # Emulated bf16 is several times slower than float32 on an AVX2 CPU: auto must not take it.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    settings = ("logger=none", "trainer.max_epochs=1", "trainer.precision=auto")
    metrics = train(tiny_cfg(*settings), tmp_path)
    assert metrics["precision"] == expected
    assert json.loads((tmp_path / "metrics.json").read_text())["precision"] == expected
