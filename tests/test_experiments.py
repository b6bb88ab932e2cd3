"""Every recipe in conf/experiment composes and runs a tiny fit/test on the tiny data."""

import pytest

from src.core.config import CONF_DIR
from src.train import train
from tests.conftest import compose_train

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
