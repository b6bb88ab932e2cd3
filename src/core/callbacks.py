"""The project's own callbacks, which conf/callbacks/default.yaml names as entries beside
Lightning's: the checkpoints in the run folder, a line per epoch, a clean stop on Ctrl-C or
SIGTERM, the progress bar, the network's summary and a moving average of the weights. (The
pictures of a TensorBoard run are in src/visuals/pictures.py.)"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EMAWeightAveraging,
    ModelCheckpoint,
    TQDMProgressBar,
)
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only

from src.models import LAYER_COLUMNS, layer_rows
from src.visuals.tables import markdown_table

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted.ckpt"  # in checkpoints/: the exact state of a run stopped on a signal


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, its epochs counted from 1 as the epoch lines count them, without the
    logger's version number (here the run name)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        self.train_progress_bar.set_description(epoch_of(trainer))

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def epoch_of(trainer: L.Trainer) -> str:
    return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"


class EpochResults(Callback):
    """One line per validation: the epoch, the training loss and accuracy of its batches (so that
    overfitting shows, as debug=overfit wants), the validation accuracy and loss, and the best
    validation accuracy so far."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # Every process computes: the epoch's running averages are summed over them.
        train_loss = float(pl_module.train_loss.compute())
        train_acc = float(pl_module.train_acc.compute())
        if not trainer.is_global_zero:
            return
        # The accuracies from their counts, as the run's last line and metrics.json give them:
        # the logged float32 can round the other way (1 of 160: 0.63%, not 0.62%).
        val, best = pl_module.val_tally.accuracy, pl_module.val_best.accuracy
        val_loss = float(trainer.callback_metrics["val/loss"])
        log.info(
            f"{epoch_of(trainer)} | train/loss {train_loss:.4f} | train/acc {train_acc:.2%} | "
            f"val/acc {val:.2%} | val/loss {val_loss:.4f} | best {best:.2%}"
        )


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint in the run folder's checkpoints/, where resume= and src.eval
    look, under its one name: a later save replaces the file instead of adding best-v1.ckpt."""

    def __init__(self, run_dir: Path, **options: Any) -> None:
        super().__init__(dirpath=run_dir / "checkpoints", enable_version_counter=False, **options)


class NetworkSummary(Callback):
    """The network's layers with their parameters and multiply-adds per image, once, when fit
    starts. (Lightning's own summary lists the metric objects as layers and counts no FLOPs.)"""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            network = pl_module.network
            rows = layer_rows(network, tuple(pl_module.hparams.image_shape))
            name = f"{type(network).__module__}.{type(network).__qualname__}"
            log.info(f"network {name}\n{markdown_table(LAYER_COLUMNS, rows)}")


class Interrupted(BaseException):
    """Training stopped on a signal after saving its state. A BaseException, as KeyboardInterrupt
    is: it ends the run (a whole sweep too) instead of being recorded as a failed job."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SaveOnInterrupt(Callback):
    """Ctrl-C (SIGINT) or SIGTERM (what a cluster sends before it kills a job) while training:
    finish the current step, save the exact state to checkpoints/interrupted.ckpt, log the command
    that resumes, and raise Interrupted. A second Ctrl-C stops at once, without saving.

    The state is saved where Lightning saves its own mid-epoch checkpoints (the end of a training
    step), so `resume=` continues with the next batch as if nothing had happened. Every checkpoint
    also keeps the random generators, which dropout and augmentation draw from and Lightning does
    not save.

    During the final test (after fit) there is nothing left to save: a signal stops at once, and
    the message gives the command that tests the kept checkpoints.

    (Lightning's OnExceptionCheckpoint saves wherever an exception struck, mid-step, and neither
    handles SIGTERM nor says how to go on: this one is kept.)
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.signum: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning has installed its own SIGTERM handler by now; this one replaces it while
        # training runs, and Lightning puts the handlers it found back when fit ends.
        handle_stop_signals(self.request_stop)

    def request_stop(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning would turn Ctrl-C into "attempting graceful shutdown" and exit status 1.
        handle_stop_signals(self.stop_testing)
        if self.signum is not None:  # a signal during the last validation, which fit finished
            self.stop_testing(self.signum, None)

    def stop_testing(self, signum: int, frame) -> None:
        if rank_zero_only.rank == 0:
            log.warning(
                f"{signal.Signals(signum).name}: the final test stops; the checkpoints in "
                f"{self.run_dir / 'checkpoints'} are kept, test them with: "
                f"python -m src.eval ckpt_path={self.run_dir}"
            )
        raise Interrupted(signum)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.stop_requested(trainer):
            return
        path = self.run_dir / "checkpoints" / INTERRUPTED
        trainer.save_checkpoint(path)  # every process takes part; rank 0 writes
        signum = self.signum or signal.SIGTERM
        if trainer.is_global_zero:
            log.warning(
                f"{signal.Signals(signum).name} at step {trainer.global_step} "
                f"({epoch_of(trainer)}): the run's state is saved in {path}. Resume with:\n"
                f"python -m src.train resume={self.run_dir}"
            )
        # Lightning sends this step's logged values to the loggers after this hook: now, so the
        # TensorBoard run that resume= continues lacks no step.
        trainer._logger_connector.update_train_step_metrics()
        raise Interrupted(signum)

    def state_dict(self) -> dict[str, Any]:
        generators = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            generators["cuda"] = torch.cuda.get_rng_state_all()
        return generators

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def stop_requested(self, trainer: L.Trainer) -> bool:
        if trainer.world_size == 1:
            return self.signum is not None
        # Under DDP every process must stop after the same step, and agreeing on it is a
        # collective operation: only at the logging interval, to keep the steps free of syncs.
        if trainer.global_step % trainer.log_every_n_steps:
            return False
        return trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False)


def handle_stop_signals(handler) -> None:
    """SIGINT and SIGTERM call handler from now on (Python lets only the main thread set them)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, handler)


class MovingAverage(EMAWeightAveraging):
    """Lightning's exponential moving average of the weights: swapped in for every validation, so
    the checkpoints' state_dict holds the average that was validated. Its current weights ride
    along (`current_model_state`) and are put back only to resume training: the final test, after
    fit, would otherwise score them in place of the average."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
