"""The trainer group: every argument of Lightning's Trainer, names and types checked against its
signature, values by Lightning, each mistake one line."""

import sys
import tempfile
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from lightning.pytorch.callbacks import Timer

from src.core.config import validate
from src.core.config_errors import explain_config_error
from src.core.hparams import TensorBoardRun
from src.train import trainer_of_run
from tests.conftest import compose_train


def trainer_of(*overrides: str, run_dir: Path | None = None):
    cfg = compose_train(*overrides)
    validate(cfg)
    with tempfile.TemporaryDirectory() as scratch:
        return trainer_of_run(cfg, run_dir or Path(scratch), TensorBoardRun())


def test_any_trainer_argument_can_be_set_and_reaches_the_trainer():
    trainer = trainer_of(
        "++trainer.accumulate_grad_batches=4",
        "++trainer.max_steps=7",
        "++trainer.num_sanity_val_steps=0",
        "++trainer.gradient_clip_algorithm=value",
        "trainer.gradient_clip_val=0.5",
        "++trainer.max_time=00:00:30:00",
        "++trainer.benchmark=true",
    )
    assert trainer.accumulate_grad_batches == 4 and trainer.max_steps == 7
    assert trainer.num_sanity_val_steps == 0 and trainer.gradient_clip_val == 0.5
    assert trainer.gradient_clip_algorithm == "value"
    assert trainer.fit_loop.max_steps == 7
    (timer,) = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert timer._duration == 30 * 60  # max_time's 00:00:30:00, in seconds


def test_the_project_values_become_lightnings(monkeypatch, tmp_path):
    monkeypatch.setattr("src.core.trainer.fastest_precision", lambda accelerator: "32-true")
    trainer = trainer_of("trainer.precision=auto", "trainer.profiler=simple", run_dir=tmp_path)
    assert trainer.precision == "32-true"
    assert type(trainer.profiler).__name__ == "SimpleProfiler"
    assert trainer.profiler.dirpath is not None  # the run folder, not the logger's
    assert Path(trainer.profiler.dirpath) == tmp_path


def test_a_trainer_argument_that_conf_trainer_does_not_list_is_named_with_the_fix(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py"])  # explain_config_error words it for src.train
    with pytest.raises(ConfigCompositionException) as unknown:
        compose_train("trainer.accumulate_grad_batches=4")
    assert explain_config_error(unknown.value) == (
        "trainer.accumulate_grad_batches is a Trainer argument that conf/trainer does not list: "
        "++trainer.accumulate_grad_batches=... sets it"
    )
    with pytest.raises(ConfigCompositionException) as misspelt:
        compose_train("trainer.max_epoch=3")
    assert explain_config_error(misspelt.value).startswith(
        "trainer.max_epoch is not an argument of lightning.pytorch.Trainer: did you mean "
        "max_epochs or min_epochs"
    )
    with pytest.raises(ConfigCompositionException) as moved:
        compose_train("trainer.threads=2")
    assert explain_config_error(moved.value) == (
        "trainer.threads is a setting of the run, not a Trainer argument: threads=..."
    )
