"""The callbacks every run uses: checkpoints, early stopping, progress bar, model summary, and
the pictures of a TensorBoard run."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig

from src.pictures import Pictures

MONITOR = "val/acc"


class ProgressBar(TQDMProgressBar):
    """Lightning's bar without the logger's version number, which here is the run name."""

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def build_callbacks(cfg: DictConfig, run_dir: Path, logger: Logger | None) -> list[Callback]:
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best",
            monitor=MONITOR,
            mode="max",
            save_last=True,
            enable_version_counter=False,
        ),
        ModelSummary(max_depth=cfg.summary_depth),
    ]
    if cfg.progress_bar_refresh > 0:
        callbacks.append(ProgressBar(refresh_rate=cfg.progress_bar_refresh))
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if isinstance(logger, TensorBoardLogger):
        callbacks.append(Pictures(cfg.pictures))
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=cfg.patience))
    return callbacks
