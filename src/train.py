"""Train a network on a data set: fit with validation every epoch, then test the best checkpoint.

python -m src.train model=convnet32 optimizer=adam
python -m src.train model=resnet_small data=fashion_mnist optimizer=adamw scheduler=cosine
python -m src.train -m model=convnet16,convnet32 optimizer=sgd,adam
python -m src.train resume=outputs/runs/<date>/<time>    # continue a stopped run
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig

from src.core.build import build, build_entries, settings_of
from src.core.callbacks import Interrupted
from src.core.checkpoints import load_weights_that_fit
from src.core.classifier import Classifier, Tally
from src.core.config import validate
from src.core.config_errors import exit_on_config_error
from src.core.distributed import (
    leave_the_log_file_to_rank_zero,
    processes_of_this_job,
    wait_for_launched_processes,
)
from src.core.errors import USER_ERRORS, exit_on_usage_error, show_traceback
from src.core.hparams import TensorBoardRun, board_of, hparams_entry, log_hparams
from src.core.records import write_failure, write_metrics
from src.core.resume import resumed_run
from src.core.sweeps import OPTIMIZED_METRIC, threads_per_job
from src.core.trainer import build_trainer
from src.models import count_parameters, multiply_adds

log = logging.getLogger(__name__)
# Lightning 2.6 calls a torch pytree API that newer torch marks deprecated, once per run: noise.
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_usage_error
def main(cfg: DictConfig) -> float | None:
    # Warnings go to the log too: train.log keeps them, the console hides the expected ones.
    logging.captureWarnings(True)
    run = HydraConfig.get()
    run_dir = Path(run.runtime.output_dir)
    overrides = list(run.overrides.task)
    try:
        with processes_of_this_job("src.train"):
            # A resume that fails writes no failure: its folder's metrics.json, if any, is the
            # finished run's, which a mistake such as a wrong DATA_DIR must not overwrite.
            if cfg.resume is not None:
                resumed = resumed_run(cfg, run)
                metrics = train(
                    resumed.cfg, run_dir, resumed.overrides, resumed.board, resumed.checkpoint
                )
                return metrics[OPTIMIZED_METRIC]
            if run.mode == RunMode.MULTIRUN:
                return sweep_job(cfg, run, run_dir, overrides)
            try:
                return train(cfg, run_dir, overrides, board_of(run))[OPTIMIZED_METRIC]
            except Exception as error:
                write_failure(run_dir, error, overrides, cfg.name)
                raise
    except Interrupted as stop:
        sys.exit(128 + stop.signum)  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


def sweep_job(
    cfg: DictConfig, run: DictConfig, run_dir: Path, overrides: list[str]
) -> float | None:
    """One job of a multirun. A failure is written to the job's metrics.json and the job returns
    None, so the sweep goes on and its summary lists the failure (Optuna counts the trial as
    failed); with fail_fast=true the first failure stops the whole sweep."""
    if cfg.threads is None:
        cfg.threads = threads_per_job(run.launcher)
    sweep_dir = Path(run.sweep.dir)
    try:
        return train(cfg, run_dir, overrides, board_of(run, sweep_dir))[OPTIMIZED_METRIC]
    except Exception as error:
        reason = write_failure(run_dir, error, overrides, cfg.name)
        a_bug = not isinstance(error, USER_ERRORS)
        log.error(f"job {run.job.num} failed: {reason}", exc_info=a_bug or show_traceback())
        if cfg.fail_fast:
            sys.exit("error: the sweep stops at its first failed job (fail_fast=true)")
        return None


def train(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str] | None = None,
    board: TensorBoardRun | None = None,
    ckpt_path: Path | None = None,
) -> dict[str, Any]:
    """Fit, validating every epoch, then test the best checkpoint; returns the final metrics.
    TensorBoard writes to <board.root>/<board.name> (default: the run folder's tensorboard/); a
    new sweep job claims its name there once its config has built, so a job with a bad value
    gets none.
    With ckpt_path, fit continues from that checkpoint's exact state."""
    board = board or TensorBoardRun()
    validate(cfg)
    route_library_logs_to_hydra()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    data, model = build_run(cfg)
    if ckpt_path:  # a clear message now rather than a traceback from inside fit, which loads
        load_weights_that_fit(model, ckpt_path)  # them again with the rest of the state
    trainer = trainer_of_run(cfg, run_dir, board)
    leave_the_log_file_to_rank_zero(trainer)
    if trainer.is_global_zero:
        log.info(f"settings: {' '.join(overrides or []) or 'the defaults (conf/train.yaml)'}")
        if cfg.trainer.precision == "auto":
            native = "native" if trainer.precision == "bf16-mixed" else "no native"
            log.info(f"precision auto: {trainer.precision} ({native} bfloat16 here)")

    start = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    fit_seconds = time.perf_counter() - start
    val_best = model.val_best  # read now: testing the best checkpoint loads its val_best
    trainer.test(model, datamodule=data, ckpt_path=checkpoint_to_test(trainer), verbose=False)

    metrics = final_metrics(trainer, model, data, val_best, fit_seconds)
    if trainer.is_global_zero:
        report(trainer, cfg, board, metrics, run_dir, overrides or [])
    wait_for_launched_processes(trainer)
    return metrics


def final_metrics(
    trainer: L.Trainer,
    model: Classifier,
    data: L.LightningDataModule,
    val_best: Tally | None,
    fit_seconds: float,
) -> dict[str, Any]:
    """metrics.json's content: the test, the best validation epoch, and what the run cost."""
    return {
        **tally_metrics("test", model.test_tally),
        "test/loss": float(trainer.callback_metrics["test/loss"]),
        **tally_metrics("val", val_best, "_best"),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "fit_seconds": round(fit_seconds, 2),
        "parameters": count_parameters(model.network),
        "multiply_adds": multiply_adds(model.network, data.image_shape),
        "threads": torch.get_num_threads(),
        "precision": trainer.precision,
    }


def report(
    trainer: L.Trainer,
    cfg: DictConfig,
    board: TensorBoardRun,
    metrics: dict[str, Any],
    run_dir: Path,
    overrides: list[str],
) -> None:
    """metrics.json, TensorBoard's HPARAMS entry, and the run's last lines on the console."""
    write_metrics(run_dir, metrics, overrides, cfg.name)
    for logger in trainer.loggers:  # fast_dev_run's stand-in logs nothing
        if isinstance(logger, TensorBoardLogger):
            log_hparams(logger, cfg, board, metrics)
        else:  # the same settings under the same run name as in TensorBoard (MLflow, CSV)
            logger.log_hyperparams(hparams_entry(cfg, board))
    if cfg.trainer.profiler:
        reports = ", ".join(sorted(path.name for path in run_dir.glob("*-profile*")))
        log.info(f"{cfg.trainer.profiler} profiler's reports in {display_path(run_dir)}: {reports}")
    log.info(result_line(metrics, run_dir))


def tally_metrics(stage: str, tally: Tally | None, suffix: str = "") -> dict[str, Any]:
    """A stage's accuracy divided from its counts, with the counts beside it; no validation
    (trainer.limit_val_batches=0) has no accuracy."""
    return {f"{stage}/acc{suffix}": None} if tally is None else tally.metrics(stage, suffix)


def result_line(metrics: dict[str, Any], run_dir: Path) -> str:
    best = metrics["val/acc_best"]
    return (
        f"test acc {metrics['test/acc']:.2%} ({metrics['test/correct']:,} of "
        f"{metrics['test/images']:,}) | best val acc {'-' if best is None else f'{best:.2%}'} | "
        f"{metrics['epochs']} epoch(s) in {metrics['fit_seconds']:.1f} s | "
        f"run {display_path(run_dir)}"
    )


def build_run(cfg: DictConfig) -> tuple[L.LightningDataModule, Classifier]:
    """The data module and the classifier a config describes; building them checks every setting
    of the plug-in groups (model, data, optimizer, scheduler)."""
    data = build("data", cfg.data, seed=cfg.seed)
    model = Classifier(
        settings_of(cfg.model),
        settings_of(cfg.optimizer),
        settings_of(cfg.scheduler),
        settings_of(cfg.data),
        data.image_shape,
        data.classes,
        channels_last=cfg.channels_last,
        label_smoothing=cfg.label_smoothing,
    )
    return data, model


def trainer_of_run(cfg: DictConfig, run_dir: Path, board: TensorBoardRun) -> L.Trainer:
    """The Trainer of the trainer group, with the run's loggers and callbacks; building them
    checks every setting of these groups."""
    return build_trainer(
        settings_of(cfg.trainer),
        run_dir,
        loggers=build_loggers(cfg.logger, run_dir, board),
        callbacks=list(build_entries("callbacks", cfg.callbacks, {"run_dir": run_dir}).values()),
    )


def checkpoint_to_test(trainer: L.Trainer) -> str | None:
    """The best checkpoint, or, when there is none, the weights in memory (the last step's), as
    the console says."""
    if trainer.checkpoint_callback.best_model_path:  # by path: "best" warns of two checkpoints
        return trainer.checkpoint_callback.best_model_path
    if trainer.is_global_zero:
        why = "fast_dev_run keeps none" if trainer.fast_dev_run else "no validation ran"
        log.info(
            f"no best checkpoint ({why}): testing the weights in memory, those of the last "
            "training step"
        )
    return None


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build_loggers(node: DictConfig | None, run_dir: Path, board: TensorBoardRun) -> list[Logger]:
    """The logger group's entries. A new sweep job claims its TensorBoard name now that its
    settings have built, so a job with a bad value gets none; every logger gets that name."""
    if not node:
        return []
    board = board.claimed()
    offered = {"run": board, "run_dir": run_dir, "save_dir": run_dir, "run_name": board.name}
    return list(build_entries("logger", node, offered).values())


def route_library_logs_to_hydra() -> None:
    """Lightning and MLflow print through their own handlers; send their messages to Hydra's
    console and per-run log file instead (src/core/console.py)."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # read when mlflow is imported
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


if __name__ == "__main__":
    exit_on_config_error(main)()
