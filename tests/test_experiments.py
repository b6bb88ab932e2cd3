"""Every recipe in conf/experiment composes and runs a tiny fit/test on the tiny data."""

import pytest
from omegaconf import OmegaConf

from src.core.checkpoints import load_classifier
from src.core.config import CONF_DIR
from src.train import train
from tests.conftest import TINY, compose_train, train_here

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_one_tiny_step(experiment, tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        f"experiment={experiment}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "logger=none",
    )
    metrics = train(cfg, tmp_path)
    assert metrics["epochs"] == 1
    assert (tmp_path / "metrics.json").is_file()


def test_seed_reproductions_are_as_the_notes_wrote_them():
    one = compose_train("experiment=adam_1epoch_batch32")
    assert (one.model.channels, one.optimizer._target_, one.optimizer.lr) == (
        [32, 64],
        "torch.optim.Adam",
        0.001,
    )
    assert (one.data.batch_size, one.trainer.max_epochs, one.data.normalize) == (32, 1, "half")
    two = compose_train("experiment=sgd_10epochs")
    assert (two.optimizer._target_, two.optimizer.lr, two.optimizer.momentum) == (
        "torch.optim.SGD",
        0.01,
        0.0,
    )
    assert (two.data.batch_size, two.trainer.max_epochs) == (64, 10)
    four = compose_train("experiment=single_conv_adam")
    assert (four.model.channels, four.model.hidden, four.data.normalize) == ([16], None, "none")
    assert four.trainer.max_epochs == 10


def test_the_ensemble_sweep_trains_each_pairing_of_its_two_settings(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    train_here(
        "-m", "experiment=ensemble", f"hydra.sweep.dir={sweep}", f"data.data_dir={tiny_mnist}",
        *TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=1", "logger=none",
    )  # fmt: skip
    members = set()
    for job in sorted(sweep.glob("[0-9]")):
        cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
        conv = load_classifier(job).network.conv1_1
        assert conv.kernel_size[0] == cfg.model.kernel_size  # padding null fits any kernel
        members.add((cfg.label_smoothing, cfg.model.kernel_size, cfg.trainer.max_epochs))
    assert members == {(0, 3, 1), (0, 5, 1), (0.1, 3, 1), (0.1, 5, 1)}
