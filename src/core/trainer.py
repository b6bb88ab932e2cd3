"""The run's Lightning Trainer, from the trainer group: any argument of Trainer's.

Names and types are checked against Trainer's own signature before anything runs; the values are
Lightning's to check when the Trainer is made, and its refusal becomes one line. Two values are
the project's: precision=auto (bf16 where the hardware computes it natively), and a profiler named
by a string writes its report into the run folder. The logger, the callbacks and the run folder
come from the run (their groups), not from this group.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import AdvancedProfiler, PyTorchProfiler, SimpleProfiler
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from src.core.build import conforms, type_name
from src.core.errors import UsageError, message_line

ARGUMENTS = typing.get_type_hints(L.Trainer.__init__)
ARGUMENTS.pop("return")
SET_BY_THE_RUN = {
    "logger": "the logger group (logger=csv, logger=[tensorboard,csv])",
    "callbacks": "the callbacks group (+callbacks.<name>._target_=<class>)",
    "default_root_dir": "the run folder (hydra.run.dir)",
    "enable_progress_bar": "callbacks.progress_bar_refresh (0 hides the bar)",
}
# Counts that Lightning takes unchecked and divides by in the middle of fit.
COUNTS = ("accumulate_grad_batches", "log_every_n_steps", "check_val_every_n_epoch")
# Where Lightning would write a profiler named by a string: the logger's folder, a sweep's shared
# tensorboard/. These write into the run folder instead.
PROFILERS = {"simple": SimpleProfiler, "advanced": AdvancedProfiler, "pytorch": PyTorchProfiler}


def require_trainer_arguments(settings: Mapping[str, Any], run_settings: Iterable[str]) -> None:
    """Every key an argument of lightning.pytorch.Trainer with a value of its annotated type, and
    none of those the run sets itself; `run_settings`: the top-level keys, for a setting of the
    run's put under trainer (trainer.threads)."""
    for name, value in settings.items():
        if name in SET_BY_THE_RUN:
            raise UsageError(f"trainer.{name} is set by {SET_BY_THE_RUN[name]}")
        if name not in ARGUMENTS:
            raise UsageError(not_an_argument(name, run_settings))
        if not (conforms(value, ARGUMENTS[name]) or name == "precision" and value == "auto"):
            raise UsageError(
                f"trainer.{name}={value!r} is not of type {type_name(ARGUMENTS[name])}, as "
                "lightning.pytorch.Trainer needs"
            )
        if name in COUNTS and value is not None and value < 1:
            raise UsageError(f"trainer.{name} must be >= 1, got {value}")
    if settings.get("limit_test_batches") == 0:
        raise UsageError(
            "trainer.limit_test_batches must be > 0: a run ends by testing its best checkpoint"
        )


def not_an_argument(name: str, run_settings: Iterable[str]) -> str:
    if name in run_settings:
        return f"trainer.{name} is a setting of the run, not a Trainer argument: {name}=..."
    close = difflib.get_close_matches(name, ARGUMENTS, n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (
        f"trainer.{name} is not an argument of lightning.pytorch.Trainer: {hint}its arguments "
        f"are listed by python -c 'import lightning; help(lightning.Trainer)'"
    )


def build_trainer(
    settings: Mapping[str, Any], run_dir: Path, loggers: list[Logger], callbacks: list[Callback]
) -> L.Trainer:
    """The Trainer of these arguments, with the run's loggers, callbacks and folder; a value
    Lightning refuses is one line."""
    arguments = dict(settings)
    if arguments.get("precision") == "auto":
        arguments["precision"] = fastest_precision(arguments.get("accelerator", "auto"))
    if (profiler := arguments.get("profiler")) in PROFILERS:
        arguments["profiler"] = PROFILERS[profiler](dirpath=run_dir, filename="profile")
    try:
        return L.Trainer(
            **arguments,
            logger=loggers or False,
            callbacks=callbacks,
            enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
            default_root_dir=run_dir,
        )
    except (MisconfigurationException, ValueError, TypeError, ImportError) as error:
        raise UsageError(
            f"trainer: {message_line(error).rstrip('!.')}{gpu_hint(arguments)}"
        ) from None


def gpu_hint(arguments: Mapping[str, Any]) -> str:
    """What to ask for instead of a GPU on a machine without one."""
    if arguments.get("accelerator") != "gpu" or torch.cuda.is_available():
        return ""
    ddp = arguments.get("strategy") == "ddp"
    return ": there is no GPU here (torch.cuda.is_available() is False); use " + (
        "trainer=ddp_cpu (DDP over CPU processes)" if ddp else "trainer=cpu or trainer=auto"
    )


def fastest_precision(accelerator: str) -> str:
    """trainer.precision=auto: bf16 autocast where the hardware computes bfloat16 natively (a GPU
    that supports it; a CPU with AVX512-BF16 or AMX), float32 elsewhere, where bf16 is emulated
    and several times slower (measured on an AVX2-only EPYC: docs/performance.md)."""
    if accelerator != "cpu" and torch.cuda.is_available():
        native = torch.cuda.is_bf16_supported()
    else:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16-mixed" if native else "32-true"
