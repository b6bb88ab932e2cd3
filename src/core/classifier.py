"""The Lightning task: any network as a classifier, with its loss, metrics, optimizer and schedule.

The training step is `Classifier.training_step`; everything else here serves it or reports it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy

from src.core.build import build, takes
from src.core.errors import UsageError, message_line
from src.models import one_blank_image

# The arguments of a schedule that give the run's length (in its intervals: steps or epochs).
RUN_LENGTH = ("total_steps", "T_max", "total_iters")
INTERVALS = ("step", "epoch")
# The run a schedule is tried on before the real one, in its intervals.
STAND_IN_RUN = {"step": 100, "epoch": 10}


class Tally(NamedTuple):
    """Right predictions out of images: the accuracy divided in Python is exact (a float32 mean of
    9,855 right out of 10,000 reads 0.9854999780654907)."""

    correct: int
    images: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    def metrics(self, stage: str, suffix: str = "") -> dict[str, Any]:
        """As metrics.json holds them: the accuracy, and the counts it is divided from."""
        return {
            f"{stage}/acc{suffix}": self.accuracy,
            f"{stage}/correct{suffix}": self.correct,
            f"{stage}/images": self.images,
        }


class CorrectCount(Metric):
    """Counts right predictions and images as integers; torchmetrics sums them over the
    processes of a DDP run when `compute` is called."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("images", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor) -> None:
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.images += labels.numel()

    def compute(self) -> Tally:
        return Tally(int(self.correct), int(self.images))


class Classifier(L.LightningModule):
    """Built from plain values: the run's `model`, `optimizer`, `scheduler` and `data` configs and
    what the data set tells the network (its image shape and class names). They are saved in every
    checkpoint, so a checkpoint alone rebuilds the classifier and the data it was trained on."""

    # Saved in checkpoints beside the weights (torchmetrics leaves them out), so a run resumed
    # mid-epoch ends with the same numbers: the epoch's running training averages (and, apart,
    # the best validation epoch's tally, `val_best`).
    RESUMED_METRICS = ("train_loss", "train_acc")

    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        data: dict[str, Any],
        image_shape: tuple[int, int, int],
        classes: list[str],
        channels_last: bool = False,  # older checkpoints have none
        label_smoothing: float = 0.0,  # older checkpoints have none
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the full run config goes to the logger instead
        self.num_classes = len(classes)
        self.network = build_network(model, image_shape, self.num_classes)
        check_optimization(optimizer, scheduler)
        # Channels-last lets oneDNN (CPU) and cuDNN (GPU) pick their fastest convolutions.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network.to(memory_format=self.memory_format)
        # Training metrics skip input checks: they run every step, on labels the data module made.
        self.train_acc = MulticlassAccuracy(len(classes), average="micro", validate_args=False)
        self.train_loss = MeanMetric(nan_strategy="disable")
        # Validation and test accuracies are counted, for metrics.json's exact fractions.
        self.val_count, self.test_count = CorrectCount(), CorrectCount()
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_tally: Tally | None = None  # the last validation epoch's
        # The best validation epoch so far, as counts: torchmetrics' MetricTracker keeps the
        # float of each epoch, and a resumed run would need its history in the checkpoint.
        self.val_best: Tally | None = None
        self.test_tally: Tally | None = None  # the last test's
        # The first step whose loss was NaN or infinite (-1: none), kept on the device: reading
        # the loss every step would make the GPU wait for the host.
        self.register_buffer("first_bad_step", torch.tensor(-1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images.contiguous(memory_format=self.memory_format))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        diverged_now = (self.first_bad_step < 0) & ~loss.detach().isfinite()
        step = self.trainer.global_step
        self.first_bad_step.copy_(torch.where(diverged_now, step, self.first_bad_step))
        self.train_loss.update(loss.detach(), weight=len(labels))
        self.train_acc.update(logits.detach(), labels)
        # self.log costs about a millisecond (a tenth of a step on a small CPU): per-step values
        # are logged only on the steps whose logs Lightning writes out.
        if (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.stop_if_diverged()
            accuracy = multiclass_accuracy(logits, labels, self.num_classes, average="micro")
            self.log_dict({"train/loss": loss, "train/acc": accuracy}, prog_bar=True)
            # One tag whatever the optimizer (Lightning's LearningRateMonitor names it after the
            # optimizer's class, so a sweep over optimizers would split it across charts): the
            # rate this step used, as the schedule steps after the optimizer.
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss)
        self.log("train/acc_epoch", self.train_acc)

    def held_out_step(self, batch: tuple[Tensor, Tensor], loss_metric, count, stage: str) -> Tensor:
        """A validation or test step: the loss and the count of right answers, no training."""
        images, labels = batch
        logits = self(images)
        # Without label smoothing, so that validation and test losses compare across runs.
        loss_metric.update(F.cross_entropy(logits, labels), weight=len(labels))
        count.update(logits, labels)
        self.log(f"{stage}/loss", loss_metric, prog_bar=True)
        return logits

    def epoch_tally(self, count: CorrectCount, stage: str) -> Tally:
        """The epoch's count, summed over processes, logged as {stage}/acc; then reset."""
        tally = count.compute()
        count.reset()
        if not self.trainer.sanity_checking:
            # The same value on every process (the count is synced); sync_dist tells Lightning so.
            self.log(f"{stage}/acc", tally.accuracy, prog_bar=True, sync_dist=True)
        return tally

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Returns the logits, for callbacks that picture the validation (src/visuals/)."""
        return self.held_out_step(batch, self.val_loss, self.val_count, "val")

    def on_validation_epoch_end(self) -> None:
        tally = self.epoch_tally(self.val_count, "val")
        if self.trainer.sanity_checking:
            return
        self.val_tally = tally
        # Strictly better, as ModelCheckpoint decides which epoch's weights are best.ckpt.
        if self.val_best is None or tally.accuracy > self.val_best.accuracy:
            self.val_best = tally
        self.log("val/acc_best", self.val_best.accuracy, prog_bar=True, sync_dist=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.held_out_step(batch, self.test_loss, self.test_count, "test")

    def on_test_epoch_end(self) -> None:
        self.test_tally = self.epoch_tally(self.test_count, "test")

    def stop_if_diverged(self) -> None:
        """Checked where the host reads values anyway (the logging interval) and before every
        checkpoint, so the checkpoints on disk keep the last good weights."""
        step = int(self.first_bad_step)
        if step >= 0:
            folder = Path(self.trainer.checkpoint_callback.dirpath)
            kept = (
                f"the checkpoints saved before it are kept in {folder}"
                if any(folder.glob("*.ckpt"))
                else "no checkpoint had been saved yet"
            )
            raise UsageError(
                f"the training loss became NaN or infinite at global step {step}, so training "
                f"stopped; {kept}. Lower "
                "optimizer.lr or set trainer.gradient_clip_val (e.g. 1.0), and start again"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.stop_if_diverged()
        checkpoint["metric_states"] = {
            name: getattr(self, name).metric_state for name in self.RESUMED_METRICS
        }
        checkpoint["val_best"] = tuple(self.val_best) if self.val_best else None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, state in checkpoint.get("metric_states", {}).items():
            if name in self.RESUMED_METRICS:  # older checkpoints kept the best as a metric
                for key, value in state.items():
                    setattr(getattr(self, name), key, value.to(self.device))
        best = checkpoint.get("val_best")
        self.val_best = Tally(*best) if best else None

    def configure_optimizers(self):
        optimizer = build("optimizer", self.hparams.optimizer, self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        trainer = self.trainer
        length = {"step": trainer.estimated_stepping_batches, "epoch": trainer.max_epochs}
        require_room_for_the_run(self.hparams.scheduler, length)
        return {
            "optimizer": optimizer,
            "lr_scheduler": build_scheduler(self.hparams.scheduler, optimizer, length),
        }


def build_network(settings: dict[str, Any], image_shape, num_classes: int) -> torch.nn.Module:
    """The model group's network, given the data set's image shape and number of classes if it
    takes them (a network of the user's own may not)."""
    from_data = {"image_shape": tuple(image_shape), "num_classes": num_classes}
    network = build(
        "model", settings, **{k: v for k, v in from_data.items() if takes("model", settings, k)}
    )
    require_logits(network, settings["_target_"], tuple(image_shape), num_classes)
    return network


def require_logits(network: torch.nn.Module, target: str, image_shape, num_classes: int) -> None:
    """One blank image through the network, so that a network of the user's own that returns
    the wrong shape is named now, not by a traceback from the loss in the middle of fit."""
    size = "x".join(map(str, image_shape))
    try:
        shape = tuple(one_blank_image(network, image_shape).shape)
    except Exception as error:
        raise UsageError(
            f"model ({target}) fails on one {size} image ({type(error).__name__}: "
            f"{message_line(error)}): its forward must take a batch of the data set's images"
        ) from None
    if shape != (1, num_classes):
        raise UsageError(
            f"model ({target}) returns a tensor of shape {shape} for one {size} image: its "
            f"forward must return logits of shape (batch, {num_classes}), one per class"
        )


def build_scheduler(
    settings: dict[str, Any], optimizer: torch.optim.Optimizer, length: dict[str, int]
) -> dict[str, Any]:
    """Lightning's scheduler entry: the schedule, stepped every `interval` (step or epoch), its
    length argument (total_steps, T_max, total_iters) filled with the run's length unless the
    config sets it."""
    interval = interval_of(settings)
    if interval not in INTERVALS:
        raise UsageError(f"scheduler.interval must be one of {list(INTERVALS)}, got '{interval}'")
    run_length = {name: int(length[interval]) for name in sized_by_the_run(settings)}
    scheduler = build("scheduler", settings, optimizer, own_keys=("interval",), **run_length)
    return {"scheduler": scheduler, "interval": interval}


def require_room_for_the_run(settings: dict[str, Any], length: dict[str, int]) -> None:
    """OneCycleLR cannot step past its end, as the other schedules can (a cosine starts again)."""
    total_steps, interval = settings.get("total_steps"), interval_of(settings)
    if total_steps is not None and total_steps < length[interval]:
        raise UsageError(
            f"scheduler.total_steps={total_steps} is shorter than the run ({length[interval]} "
            f"{interval}s), and the schedule cannot step past its end: leave total_steps out "
            "(the run's length fills it)"
        )


def interval_of(settings: dict[str, Any]) -> str:
    """How often the schedule steps: its YAML says; one named on the command line alone
    (scheduler._target_=...) steps every training step."""
    return settings.get("interval", "step")


def sized_by_the_run(settings: dict[str, Any]) -> list[str]:
    """The schedule's length arguments that the run's length fills (those the config leaves out)."""
    return [
        name for name in RUN_LENGTH if name not in settings and takes("scheduler", settings, name)
    ]


def check_optimization(optimizer: dict[str, Any], scheduler: dict[str, Any]) -> None:
    """Build the optimizer and schedule once on a stand-in parameter, and step the schedule
    through a stand-in run, so that their settings are checked when the classifier is made,
    before any work starts."""
    stand_in = build("optimizer", optimizer, [torch.nn.Parameter(torch.zeros(1))])
    if scheduler:
        entry = build_scheduler(scheduler, stand_in, STAND_IN_RUN)
        # Not past a length the config sets: a cosine of T_max=5 is a run of 5 steps too.
        given = [scheduler[name] - 1 for name in RUN_LENGTH if isinstance(scheduler.get(name), int)]
        steps = max(1, min([STAND_IN_RUN[entry["interval"]], *given]))
        rehearse(entry["scheduler"], steps, scheduler["_target_"])


def rehearse(schedule: Any, steps: int, target: str) -> None:
    """Step the schedule: arguments that torch accepts but that fail when it steps (a step_size
    or T_max of 0) or that make the learning rate negative (a negative max_lr or gamma) are named
    now, not in the middle of fit."""
    if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return  # it steps on a metric, not on the run
    optimizer = schedule.optimizer
    for step in range(steps + 1):
        rate = min(group["lr"] for group in optimizer.param_groups)
        if not rate >= 0:  # NaN too
            raise UsageError(
                f"scheduler ({target}) makes the learning rate {rate:.3g} at its step {step}: "
                "choose arguments that keep it >= 0 (a positive max_lr, gamma, ...)"
            )
        if step == steps:
            return
        try:
            with warnings.catch_warnings():  # of a schedule stepped with no optimizer step
                warnings.simplefilter("ignore")
                schedule.step()
        except Exception as error:
            raise UsageError(
                f"scheduler ({target}) fails at its step {step + 1} ({type(error).__name__}: "
                f"{message_line(error)}): check its arguments (a step_size or T_max of 0?)"
            ) from None
