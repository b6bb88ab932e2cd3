"""The sweeper of `python -m src.train -m`: Hydra's basic sweeper (the cartesian product of the
swept values), except for a job whose config cannot be composed (an option that is not a file of
its group, a key that is not a setting). Hydra composes every job before it launches any and ends
the whole sweep, over many lines, at the first that fails; here that job is recorded as failed in
one line, in its folder's metrics.json as a job that fails while training is, and the sweep goes
on. With fail_fast=true the sweep stops before any job runs, with one line and exit status 2.
The Optuna search (src/core/search.py) treats its trials' jobs the same way.

Hydra takes a sweeper from the hydra_plugins package only: hydra_plugins/mnist_convnets names
this one, and conf/hydra/default_sweeper.yaml selects it (hydra/sweeper: keep_going).
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

# Hydra's cartesian product of the swept values has no public home: the basic sweeper is the
# only implementation of it, and it is Hydra's default sweeper, so it stays as it is.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from src.core.errors import EXIT_USAGE, explain_config_error
from src.core.records import write_metrics

log = logging.getLogger(__name__)


class RecordsJobsThatCannotBeComposed:
    """For a sweeper (self.config, self.hydra_context, self.launcher as Hydra's Sweeper has
    them): a job whose config cannot be composed is recorded as failed and the sweep goes on."""

    config: DictConfig
    hydra_context: HydraContext
    launcher: Launcher

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = ComposableJobsLauncher(self.launcher, self)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Hydra's check before a batch is launched: with fail_fast=true only, and in one line;
        otherwise each job is checked as it is launched."""
        if not self.config.fail_fast:
            return
        for overrides in batch:
            if error := self.composition_error(overrides):
                print(
                    f"error: {error}; the sweep stops before it starts (fail_fast=true)",
                    file=sys.stderr,
                )
                sys.exit(EXIT_USAGE)

    def composition_error(self, overrides: Sequence[str]) -> str | None:
        """Why the job's config cannot be composed, in one line; None when it can."""
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except (HydraException, OmegaConfBaseException) as error:
            return explain_config_error(error)
        return None

    def job_config(self, job_num: int, overrides: Sequence[str]) -> DictConfig:
        """The sweep's config as the job with this number and these overrides sees its Hydra
        part (its folder, its overrides)."""
        config = copy.deepcopy(self.config)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.job.num = config.hydra.job.id = job_num
            config.hydra.overrides.task = list(overrides)
        return config

    def job_folder(self, job_config: DictConfig) -> Path:
        # The sweep's own folder as the sweep resolved it (its name holds the time).
        return Path(self.config.hydra.sweep.dir) / str(job_config.hydra.sweep.subdir)

    def record_failure(self, job_num: int, overrides: Sequence[str], error: str) -> JobReturn:
        """The job's folder as a job that failed leaves it (.hydra/ and metrics.json), so the
        sweep's summary lists it; the job returns None, as a job that failed does."""
        config = self.job_config(job_num, overrides)
        folder = self.job_folder(config)
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.masked_copy(config, ["hydra"]), folder / ".hydra" / "hydra.yaml")
        OmegaConf.save(config.hydra.overrides.task, folder / ".hydra" / "overrides.yaml")
        write_metrics(folder, {"status": "failed", "error": error}, list(overrides), config.name)
        log.error(f"job {job_num} failed: {error}")
        return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)


class KeepGoingSweeper(RecordsJobsThatCannotBeComposed, BasicSweeper):
    """Hydra's basic sweeper, going on past a job whose config cannot be composed."""


class ComposableJobsLauncher:
    """The launcher as a sweeper's batches see it: the jobs whose config can be composed
    go to the configured launcher (a run of them at a time, so joblib still runs them side by
    side), the others are recorded as failed; every job keeps its number in the sweep."""

    def __init__(self, launcher: Launcher, sweeper: RecordsJobsThatCannotBeComposed) -> None:
        self.launcher = launcher
        self.sweeper = sweeper

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[JobReturn]:
        returns: list[JobReturn] = []
        start = 0  # the first job of the run of composable jobs not launched yet
        for index, overrides in enumerate(job_overrides):
            if error := self.sweeper.composition_error(overrides):
                returns += self.launch_some(job_overrides[start:index], initial_job_idx + start)
                returns.append(
                    self.sweeper.record_failure(initial_job_idx + index, overrides, error)
                )
                start = index + 1
        return returns + self.launch_some(job_overrides[start:], initial_job_idx + start)

    def launch_some(self, jobs: Sequence[Sequence[str]], first_job_num: int) -> list[JobReturn]:
        return list(self.launcher.launch(jobs, initial_job_idx=first_job_num)) if jobs else []
