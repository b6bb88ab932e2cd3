"""A sweep whose launcher or search cannot run its jobs stops before it starts, in one line.

The launchers and Optuna find out only once the sweep has begun, and say so in tracebacks: SLURM's
launcher off a cluster, joblib's with n_jobs=0, an Optuna search of no trials or a database it
cannot open. This Hydra callback runs first of all at the start of a sweep (conf/train.yaml), so
the sweep's folder is not even made.
"""

from __future__ import annotations

import shutil
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.core.errors import UsageError, exit_on_usage_error, message_line


class SweepCanStart(Callback):
    @exit_on_usage_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_a_launcher_that_can_start(config.hydra.launcher)
        require_a_search_that_can_start(config.hydra.sweeper)


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


def require_a_search_that_can_start(sweeper: DictConfig) -> None:
    """Optuna's settings (hparams_search=optuna); Hydra's basic sweeper has none of them."""
    for key in ("n_trials", "n_jobs"):
        value = sweeper.get(key)
        if value is not None and value < 1:
            raise UsageError(f"hydra.sweeper.{key} must be >= 1, got {value}")
    if sweeper.get("storage"):
        require_a_database_that_opens(str(sweeper.storage))


def require_a_database_that_opens(url: str) -> None:
    # Imported here: SQLAlchemy comes with Optuna (make install's sweeps extra), and only an
    # Optuna search names a storage.
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    try:
        create_engine(url).connect().close()
    except SQLAlchemyError as error:
        raise UsageError(
            f"hydra.sweeper.storage={url} cannot be opened ({message_line(error)}): name a "
            "database whose folder exists, e.g. sqlite:///outputs/optuna.db"
        ) from None
