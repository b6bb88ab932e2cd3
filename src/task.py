"""The Lightning task: a ConvNet classifier with its loss, metrics, optimizer and schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy

from src.errors import UsageError
from src.networks import NUM_CLASSES, build_convnet


class DigitClassifier(L.LightningModule):
    """Built from plain dicts (the `model`, `optimizer` and `scheduler` configs), which are saved
    in every checkpoint, so a checkpoint alone rebuilds the model."""

    # Saved in checkpoints beside the weights (torchmetrics leaves them out), so a run resumed
    # mid-epoch ends with the same numbers: the epoch's running training averages and the best
    # validation accuracy so far.
    RESUMED_METRICS = ("train_loss", "train_acc", "val_acc_best")

    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # the full run config goes to the logger instead
        self.network = build_convnet(**{k: v for k, v in model.items() if k != "name"})
        # Channels-last lets oneDNN (CPU) and cuDNN (GPU) pick their fastest convolutions.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network.to(memory_format=self.memory_format)
        # Training metrics skip input checks: they run every step, on labels the data module made.
        self.train_acc = MulticlassAccuracy(NUM_CLASSES, average="micro", validate_args=False)
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.val_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.test_acc = MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        # The first step whose loss was NaN or infinite (-1: none), kept on the device: reading
        # the loss every step would make the GPU wait for the host.
        self.register_buffer("first_bad_step", torch.tensor(-1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images.contiguous(memory_format=self.memory_format))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        diverged_now = (self.first_bad_step < 0) & ~loss.detach().isfinite()
        step = self.trainer.global_step
        self.first_bad_step.copy_(torch.where(diverged_now, step, self.first_bad_step))
        self.train_loss.update(loss.detach(), weight=len(labels))
        self.train_acc.update(logits.detach(), labels)
        # self.log costs about a millisecond (a tenth of a step on a small CPU): per-step values
        # are logged only on the steps whose logs Lightning writes out.
        if (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.stop_if_diverged()
            accuracy = multiclass_accuracy(logits, labels, NUM_CLASSES, average="micro")
            self.log_dict({"train/loss": loss, "train/acc": accuracy}, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss)
        self.log("train/acc_epoch", self.train_acc)

    def evaluate(self, batch: tuple[Tensor, Tensor], loss_metric, acc_metric, stage: str) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss_metric.update(F.cross_entropy(logits, labels), weight=len(labels))
        acc_metric.update(logits, labels)
        self.log(f"{stage}/loss", loss_metric, prog_bar=True)
        self.log(f"{stage}/acc", acc_metric, prog_bar=True)
        return logits

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Returns the logits, for callbacks that picture the validation (src/pictures.py)."""
        return self.evaluate(batch, self.val_loss, self.val_acc, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        # The same value on every process (val_acc is synced); sync_dist only tells Lightning so.
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.evaluate(batch, self.test_loss, self.test_acc, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).softmax(dim=1)

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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, state in checkpoint.get("metric_states", {}).items():
            for key, value in state.items():
                setattr(getattr(self, name), key, value.to(self.device))

    def configure_optimizers(self):
        settings = dict(self.hparams.optimizer)
        name, lr = settings.pop("name"), settings.pop("lr")
        optimizer = build_optimizer(name, self.parameters(), lr, settings)
        schedule = dict(self.hparams.scheduler)
        if schedule["name"] == "none":
            return optimizer
        scheduler = build_scheduler(schedule, optimizer, self.trainer.estimated_stepping_batches)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def build_optimizer(name: str, params, lr: float, settings: dict[str, Any]):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **settings)
    if name == "adam":
        decoupled = settings.pop("decoupled_weight_decay", False)
        optimizer_class = torch.optim.AdamW if decoupled else torch.optim.Adam
        return optimizer_class(params, lr=lr, **settings)
    raise ValueError(f"unknown optimizer '{name}'")


def build_scheduler(settings: dict[str, Any], optimizer, total_steps: int):
    """Schedules step every batch, so they work the same for any number of epochs."""
    name = settings["name"]
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            settings["max_lr"],
            total_steps=int(total_steps),
            pct_start=settings["pct_start"],
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=int(total_steps), eta_min=settings["min_lr"]
        )
    raise ValueError(f"unknown scheduler '{name}'")


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's best checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise UsageError(
            f"no checkpoint at {path}: pass a .ckpt file or a run folder that holds "
            "checkpoints/best.ckpt (see outputs/runs/...)"
        )
    return path


def load_classifier(path: str | Path, map_location: str = "cpu") -> DigitClassifier:
    """Rebuild a trained classifier from its checkpoint alone.

    Loading is weights-only: a checkpoint holds tensors and plain values, never code to run.
    """
    checkpoint = find_checkpoint(path)
    try:
        return DigitClassifier.load_from_checkpoint(
            checkpoint, map_location=map_location, weights_only=True
        )
    except Exception as error:
        if weights_do_not_fit(error):
            raise another_network(checkpoint, error) from None
        raise not_a_checkpoint(checkpoint, error) from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's content, loaded weights-only: a file that would run code when loaded (a
    pickle with its own instructions) is refused, not executed."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise not_a_checkpoint(path, error) from None
    if not isinstance(content, dict) or "state_dict" not in content:
        raise not_a_checkpoint(path, ValueError("it holds no state_dict"))
    return content


def require_fitting_weights(model: DigitClassifier, path: Path) -> None:
    """Load a checkpoint's weights into `model`, or say that they belong to another network."""
    weights = read_checkpoint(path)["state_dict"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise another_network(path, error) from None


def weights_do_not_fit(error: Exception) -> bool:
    return isinstance(error, RuntimeError) and "Error(s) in loading state_dict" in str(error)


def not_a_checkpoint(path: Path, error: Exception) -> UsageError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "Weights only load failed" in reason:  # torch's message goes on for a page
        reason = "it holds Python objects beyond tensors and plain values, which are not loaded"
    return UsageError(
        f"{path} could not be loaded as a checkpoint of this project ({reason}): pass a "
        "checkpoint written by `python -m src.train` (a run's checkpoints/best.ckpt)"
    )


def another_network(path: Path, error: Exception) -> UsageError:
    """PyTorch lists every mismatched tensor; the first one says enough."""
    details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    return UsageError(
        f"{path} holds the weights of another network than its run's model config "
        f"({details[0] if details else str(error).splitlines()[0]}): pass a checkpoint together "
        "with the config it was trained with (its own run folder)"
    )


def load_data_settings(path: str | Path) -> dict[str, Any]:
    """The data module's settings a checkpoint was trained with (Lightning saves them beside the
    model's), so its images can be prepared exactly as in training: the normalisation above all."""
    checkpoint = find_checkpoint(path)
    settings = read_checkpoint(checkpoint).get("datamodule_hyper_parameters")
    if settings is None:
        raise UsageError(
            f"{checkpoint} holds no data settings: pass a checkpoint written by "
            "`python -m src.train` (a run's checkpoints/best.ckpt)"
        )
    return settings
