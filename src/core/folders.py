"""A new run or sweep never writes into the folder of an earlier one.

Hydra writes a run's config into its folder (a sweep's, multirun.yaml at its root) before the
program starts, and the run then writes its checkpoints and metrics.json there: a folder named on
the command line (`hydra.run.dir=`, `hydra.sweep.dir=`) that already holds a run would lose it to
the new one. Such a folder, or one that cannot be made, stops the command here, in one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.core.distributed import processes_started_together
from src.core.errors import UsageError, exit_on_usage_error
from src.core.sweeps import SWEEP_CONFIG


class NewOutputFolder(Callback):
    @exit_on_usage_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The config's own subfolder: none for a resumed run, which writes into its own folder,
        # and for the processes a DDP run starts, which share their run's. Neither do the
        # processes torchrun and srun start together, which all name one folder.
        subdir = config.hydra.output_subdir
        if subdir is None or processes_started_together(os.environ) > 1:
            return
        folder = Path(config.hydra.run.dir)
        require_new_folder(folder, f"{subdir}/config.yaml", "hydra.run.dir")

    @exit_on_usage_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        require_new_folder(folder, SWEEP_CONFIG, "hydra.sweep.dir")


def require_new_folder(folder: Path, record: str, key: str) -> None:
    """The folder exists without `record` in it (what a run or a sweep writes first), or can be
    made."""
    if (folder / record).is_file():
        raise UsageError(
            f"{key}={folder} already holds a {'sweep' if key == 'hydra.sweep.dir' else 'run'} "
            f"({record}), which this one would overwrite: name a new folder, or leave {key} out "
            "for a time-stamped one (to continue a stopped training run: resume=<its folder>)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"{key}={folder} cannot be made ({error.strerror}): name a folder you can write to"
        ) from None
