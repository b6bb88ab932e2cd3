import json
import logging
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import torch
from torchmetrics import MeanMetric

from src.core.callbacks import EpochResults
from src.core.classifier import Tally
from tests.conftest import ROOT, TINY, evaluate, run_module
from tests.interrupt_at import ctrl_c_at


def test_sigterm_while_training_saves_the_state_prints_the_resume_command_and_exits(
    tiny_mnist, tmp_path
):
    run_dir = tmp_path / "run"
    training = subprocess.Popen(
        [sys.executable, "-m", "src.train", f"data.data_dir={tiny_mnist}", *TINY]
        + ["trainer.max_epochs=1000", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and training.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # until the first epoch is done: training is under way
    training.send_signal(signal.SIGTERM)
    output, _ = training.communicate(timeout=300)

    assert training.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert (run_dir / "checkpoints" / "interrupted.ckpt").is_file()
    stopped = re.search(r"warning: SIGTERM at step \d+ \(epoch (\d+)/1000\)", output)
    assert stopped and int(stopped[1]) >= 2  # after the first epoch, counted from 1 as the console
    assert output.rstrip().endswith(f"python -m src.train resume={run_dir}")
    assert "Traceback" not in output


def test_ctrl_c_during_the_final_test_keeps_the_checkpoints_and_names_the_eval_command(
    tiny_mnist, tmp_path
):
    run_dir = tmp_path / "run"
    args = [
        f"data.data_dir={tiny_mnist}",
        *TINY,
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
    ]
    stopped = run_module("src.train", *ctrl_c_at("test"), *args)

    output = stopped.stdout + stopped.stderr
    assert stopped.returncode == 128 + signal.SIGINT, output[-3000:]
    command = f"python -m src.eval ckpt_path={run_dir}"
    (line,) = [line for line in output.splitlines() if "SIGINT" in line]
    assert "the checkpoints in" in line and "are kept" in line and line.endswith(command)
    assert {"best.ckpt", "last.ckpt"} <= {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert not (run_dir / "metrics.json").exists()  # the test did not finish
    assert "Traceback" not in output and "KeyboardInterrupt" not in output

    evaluation = tmp_path / "eval"  # the command as printed tests the checkpoints
    tested = run_module(
        *command.split()[2:], f"hydra.run.dir={evaluation}", env={"DATA_DIR": str(tiny_mnist)}
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert json.loads((evaluation / "metrics.json").read_text())["test/images"] == 100


def test_last_checkpoint_is_the_last_epoch_even_when_validation_did_not_improve(tiny_cfg, tmp_path):
    from src.train import train

    # A learning rate of 0 leaves the weights as they are: epoch 2 cannot beat epoch 1.
    train(tiny_cfg("logger=none", "optimizer.lr=0"), tmp_path)
    best, last = (
        torch.load(tmp_path / "checkpoints" / f"{name}.ckpt", weights_only=True)
        for name in ("best", "last")
    )
    assert (best["epoch"], best["global_step"]) == (0, 10)
    assert (last["epoch"], last["global_step"]) == (1, 20)


def test_with_ema_the_average_of_the_weights_is_checkpointed_and_tested(tiny_mnist, tmp_path):
    run_dir, out_dir = tmp_path / "run", tmp_path / "eval"
    args = [f"data.data_dir={tiny_mnist}", *TINY, "callbacks.ema_decay=0.5"]
    trained = run_module("src.train", *args, f"hydra.run.dir={run_dir}")
    assert trained.returncode == 0, trained.stderr[-3000:]

    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    average, current = best["state_dict"], best["current_model_state"]
    assert average.keys() == current.keys()
    assert not all(torch.equal(average[name], current[name]) for name in average)
    # src.eval tests best.ckpt's state_dict: the run's own test scored the same weights.
    _, eval_metrics = evaluate(run_dir, tiny_mnist, out_dir)
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert abs(eval_metrics["test/loss"] - run_metrics["test/loss"]) < 1e-5


def test_the_epoch_line_gives_the_accuracies_of_their_counts(caplog):
    """1 right of 160 is 0.625%: exactly 0.62% to two places, 0.63% as the logged float32."""
    module = SimpleNamespace(
        train_loss=MeanMetric(),
        train_acc=MeanMetric(),
        val_tally=Tally(1, 160),
        val_best=Tally(1, 160),
    )
    module.train_loss.update(2.5)
    module.train_acc.update(0.5)
    logged = {name: torch.tensor(1 / 160) for name in ("val/acc", "val/acc_best")}
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        current_epoch=0,
        max_epochs=3,
        callback_metrics={**logged, "val/loss": torch.tensor(2.25)},
    )
    with caplog.at_level(logging.INFO, logger="src.core.callbacks"):
        EpochResults().on_validation_end(trainer, module)
    assert caplog.messages == [
        "epoch 1/3 | train/loss 2.5000 | train/acc 50.00% | val/acc 0.62% | val/loss 2.2500 | "
        "best 0.62%"
    ]


OWN_CALLBACKS = """
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class CountEpochs(Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.path.write_text(str(trainer.current_epoch + 1))


class NotACallback:
    def __init__(self, path: str) -> None:
        Path(path).write_text("ran")
"""


def test_a_callback_of_the_users_own_and_one_of_lightnings_are_added_from_the_command_line(
    tiny_mnist, tmp_path
):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my_callbacks.py").write_text(OWN_CALLBACKS)
    run_dir, counted = tmp_path / "run", tmp_path / "epochs.txt"
    result = run_module(
        "src.train", f"data.data_dir={tiny_mnist}", *TINY, "logger=csv",
        "+callbacks.count._target_=my_callbacks.CountEpochs", f"+callbacks.count.path={counted}",
        "+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor",
        "+callbacks.lr.logging_interval=epoch", f"hydra.run.dir={run_dir}",
        env={"PYTHONPATH": str(tmp_path / "mine")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert counted.read_text() == "2"
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "lr-Adam" in header.split(",")


def test_a_class_that_is_not_a_callback_is_refused_in_one_line_and_never_runs(tiny_mnist, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "my_callbacks.py").write_text(OWN_CALLBACKS)
    run_dir, proof = tmp_path / "run", tmp_path / "ran.txt"
    result = run_module(
        "src.train", f"data.data_dir={tiny_mnist}", *TINY,
        "+callbacks.x._target_=my_callbacks.NotACallback", f"+callbacks.x.path={proof}",
        f"hydra.run.dir={run_dir}", env={"PYTHONPATH": str(tmp_path / "mine")},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: callbacks.x._target_=my_callbacks.NotACallback is not a "
        "lightning.pytorch.callbacks.callback.Callback class, so it is not built: a callbacks "
        "config may only name such a class, e.g. lightning.pytorch.callbacks.LearningRateMonitor"
    )
    assert not proof.exists()
    assert not (run_dir / "checkpoints").exists()


def test_the_projects_callbacks_are_entries_removed_or_switched_by_name(tiny_cfg, tmp_path):
    from src.train import train

    # The shortcut spelling of before the entries: early stopping with a patience of 1 stops
    # a run whose learning rate of 0 cannot improve after its second epoch.
    stopped = train(
        tiny_cfg(
            "logger=none", "optimizer.lr=0", "trainer.max_epochs=5",
            "callbacks.early_stopping=true", "callbacks.patience=1", "~callbacks.last_checkpoint",
        ),
        tmp_path,
    )  # fmt: skip
    assert stopped["epochs"] == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["best.ckpt"]
