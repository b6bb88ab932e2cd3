"""Train a ConvNet on MNIST: fit with validation every epoch, then test the best checkpoint.

python -m src.train model=convnet32 optimizer=adam
python -m src.train -m model=convnet16,convnet32 optimizer=sgd,adam
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard.summary import hparams

from src.callbacks import build_callbacks
from src.config import validate
from src.data import MNISTDataModule
from src.distributed import (
    leave_the_log_file_to_rank_zero,
    processes_of_this_job,
    wait_for_launched_processes,
)
from src.errors import exit_on_usage_error
from src.task import DigitClassifier

log = logging.getLogger(__name__)
# Lightning 2.6 calls a torch pytree API that newer torch marks deprecated, once per run: noise.
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
FINAL_METRICS = ("test/acc", "test/loss", "val/acc_best")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_usage_error
def main(cfg: DictConfig) -> float:
    run = HydraConfig.get()
    overrides = list(run.overrides.task)
    with processes_of_this_job("src.train"):
        metrics = train(cfg, Path(run.runtime.output_dir), overrides, run.job.override_dirname)
    return metrics["val/acc_best"]


def train(
    cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None, run_name: str = ""
) -> dict[str, Any]:
    """Fit, validating every epoch, then test the best checkpoint; returns the final metrics."""
    validate(cfg)
    route_lightning_logs_to_hydra()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)

    data = MNISTDataModule(**cfg.data, seed=cfg.seed)
    model = DigitClassifier(
        plain(cfg.model),
        plain(cfg.optimizer),
        plain(cfg.scheduler),
        channels_last=cfg.trainer.channels_last,
    )
    logger = build_logger(cfg.logger.name, run_dir, run_name or "defaults")
    trainer = L.Trainer(
        **trainer_settings(cfg.trainer),
        logger=logger or False,
        callbacks=build_callbacks(cfg.callbacks, run_dir, with_logger=logger is not None),
        enable_progress_bar=cfg.callbacks.progress_bar_refresh > 0,
        default_root_dir=run_dir,
    )
    leave_the_log_file_to_rank_zero(trainer)

    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    fit_seconds = time.perf_counter() - start
    val_acc_best = float(trainer.callback_metrics["val/acc_best"])
    trainer.test(model, datamodule=data, ckpt_path="best")

    metrics = {name: float(trainer.callback_metrics[name]) for name in ("test/acc", "test/loss")}
    metrics |= {
        "val/acc_best": val_acc_best,
        "epochs": trainer.current_epoch,
        "fit_seconds": round(fit_seconds, 2),
    }
    if trainer.is_global_zero:
        write_metrics(run_dir, metrics, overrides or [], cfg.name)
        if isinstance(logger, TensorBoardLogger):
            log_hparams(logger, cfg, metrics)
        log.info(
            f"test acc {metrics['test/acc']:.2%} | best val acc {val_acc_best:.2%} | "
            f"{metrics['epochs']} epoch(s) in {fit_seconds:.1f} s | run {display_path(run_dir)}"
        )
    wait_for_launched_processes(trainer)
    return metrics


def trainer_settings(trainer_cfg: DictConfig) -> dict[str, Any]:
    """The trainer group minus the settings that are not Lightning Trainer arguments."""
    settings = plain(trainer_cfg)
    for ours in ("threads", "channels_last"):
        settings.pop(ours)
    return settings


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def plain(node: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True)


def build_logger(name: str, run_dir: Path, run_name: str) -> Logger | None:
    if name == "tensorboard":
        return TensorBoardLogger(
            run_dir, name="tensorboard", version=run_name, default_hp_metric=False
        )
    if name == "csv":
        return CSVLogger(run_dir, name="csv", version="")
    return None


def write_metrics(run_dir: Path, metrics: dict, overrides: list[str], name: str | None) -> None:
    record = {**metrics, "name": name, "overrides": overrides, "run_dir": str(run_dir)}
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")


def log_hparams(logger: TensorBoardLogger, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """One HPARAMS entry per run: the flattened config beside its final metrics, whose values
    TensorBoard reads from the scalars of the same names."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    experiment, session_start, session_end = hparams(flat, {k: metrics[k] for k in FINAL_METRICS})
    writer = logger.experiment._get_file_writer()
    for summary in (experiment, session_start, session_end):
        writer.add_summary(summary)
    writer.flush()


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            simple = isinstance(value, (int, float, str, bool))
            flat[f"{prefix}{key}"] = value if simple else str(value)
    return flat


def route_lightning_logs_to_hydra() -> None:
    """Lightning prints through its own handler; send its messages to Hydra's console and
    per-run log file instead."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


if __name__ == "__main__":
    main()
