"""A sweep whose launcher or search cannot run its jobs stops before it starts, in one line.

The launchers and Optuna find out only once the sweep has begun, and say so in tracebacks: SLURM's
launcher off a cluster, joblib's with n_jobs=0, an Optuna search of no trials, a search space,
sampler or pruner Optuna refuses, a database it cannot open, a study made for the other
direction (src/core/search.py). This Hydra callback runs first of all at the start of a sweep
(conf/train.yaml), so the sweep's folder is not even made.
"""

from __future__ import annotations

import shutil
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.core.errors import UsageError, exit_on_usage_error


class SweepCanStart(Callback):
    @exit_on_usage_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_a_launcher_that_can_start(config.hydra.launcher)
        require_a_search_that_can_start(config)


def require_a_launcher_that_can_start(launcher: DictConfig) -> None:
    if launcher._target_.endswith("SlurmLauncher") and shutil.which("srun") is None:
        raise UsageError(
            "hydra/launcher=slurm submits the jobs to a SLURM cluster, and this machine is not "
            "one (no srun here): run the sweep on the cluster, or here with hydra/launcher=joblib"
        )
    if launcher.get("n_jobs") == 0:  # joblib: jobs at once, counted back from the cores if < 0
        raise UsageError(
            "hydra.launcher.n_jobs=0 runs no job: give the jobs to run at once (e.g. 2), or -1 "
            "for one per core"
        )


def require_a_search_that_can_start(config: DictConfig) -> None:
    """An Optuna search's settings (hparams_search=optuna); Hydra's basic sweeper has none."""
    sweeper = config.hydra.sweeper
    if "n_trials" not in sweeper:
        return
    for key in ("n_trials", "n_jobs"):
        if sweeper[key] < 1:
            raise UsageError(f"hydra.sweeper.{key} must be >= 1, got {sweeper[key]}")
    # Imported here: Optuna comes with make install's sweeps extra, and only a search uses it.
    from src.core.search import require_a_search_that_can_start as require_the_search

    require_the_search(sweeper, config.hydra.overrides.task)
